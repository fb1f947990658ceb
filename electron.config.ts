// electron-builder's packaging config (`npm run dist`): AppImage and deb on Linux, an NSIS installer on
// Windows, a dmg on macOS. The app runs its TypeScript sources through tsx, as `cnx` does, so the sources
// ship as they are: common/, main/ (services, web mode, the Electron main process), native-worker/ (the
// engine and jobs that every worker process runs), the built renderer and preload (`npm run build`), and
// the entry main/electron/main.mjs, which runs main.ts through tsx. Native modules (the JPEG addon cnx-jpeg
// included: N-API, so the build made against Node's headers loads in Electron too) and the PyTorch
// engine's Python sources are unpacked from the asar archive, because a .node library and a Python
// interpreter can only open real files.
import type { Configuration } from 'electron-builder';

/** The Electron main process entry: it runs main/electron/main.ts (window, preload, IPC, app:// protocol). */
export const ELECTRON_MAIN = 'main/electron/main.mjs';

/**
 * onnxruntime-node ships its binaries for every OS (about 290 MB): the package keeps those of the OS it is
 * built on (electron-builder builds each OS's package on that OS).
 */
const OTHER_ONNX_BINARIES = `!node_modules/onnxruntime-node/bin/napi-v*/{${['darwin', 'linux', 'win32'].filter((os) => os !== process.platform).join(',')}}/**`;

const config: Configuration = {
  appId: 'org.convnext.workbench',
  productName: 'ConvNeXt V2 Workbench',
  copyright: 'MIT licensed',
  directories: { output: 'dist/packages', buildResources: 'assets' },
  extraMetadata: { main: ELECTRON_MAIN },
  files: [
    'package.json',
    'bin/**/*',
    'common/**/*.ts',
    // The variant table: the worker imports it, and the PyTorch engine reads it as a file (unpacked below).
    'common/variants.json',
    'main/**/*.{ts,mjs,js,html}',
    'native-worker/**/*.{ts,mjs}',
    // The data loader's JPEG addon where `npm install` could build it (the loader falls back to sharp).
    'native-worker/data/pipeline/native/build/Release/cnx_jpeg.node',
    'native-worker/torch/**/*.py',
    'dist/renderer/**/*',
    'dist/electron/preload.cjs',
    '!**/*.test.ts',
    '!native-worker/torch/**/test_*.py',
    '!native-worker/torch/**/_testkit.py',
    '!**/__pycache__/**',
    '!**/*.map',
    OTHER_ONNX_BINARIES,
  ],
  asarUnpack: [
    'common/variants.json',
    '**/*.node',
    'node_modules/onnxruntime-node/**/*',
    'node_modules/sharp/**/*',
    'node_modules/@img/**/*',
    'node_modules/better-sqlite3/**/*',
    'native-worker/torch/**/*',
  ],
  // better-sqlite3 is built against Node's ABI: rebuild it for Electron's (onnxruntime-node, sharp and the
  // JPEG addon, the `file:` optional dependency cnx-jpeg, use N-API). bin/dist.mjs rebuilds it for Node after.
  npmRebuild: true,
  linux: { target: ['AppImage', 'deb'], category: 'Science', synopsis: 'ConvNeXt V2 datasets, FCMAE pretraining, fine-tuning and analysis' },
  // libjpeg62-turbo: the JPEG addon links it (without it the loader falls back to sharp).
  deb: { recommends: ['python3', 'libjpeg62-turbo'] },
  win: { target: ['nsis'] },
  nsis: { oneClick: false, perMachine: false, allowToChangeInstallationDirectory: true },
  mac: { target: ['dmg'], category: 'public.app-category.developer-tools' },
};

export default config;
