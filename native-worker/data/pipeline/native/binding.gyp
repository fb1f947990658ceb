{
  "targets": [
    {
      "target_name": "cnx_jpeg",
      "sources": ["jpeg_crop.c"],
      "libraries": ["-ljpeg"],
      "cflags": ["-O3", "-Wall", "-Wextra"]
    }
  ]
}
