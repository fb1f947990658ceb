"""Makes this folder a package so `python -m unittest discover -s native-worker/torch -t .` can import the
tests. Code here imports `cnx_torch` after putting this folder itself on sys.path; never put the parent
`native-worker/` on sys.path, where this `torch` folder would shadow PyTorch."""
