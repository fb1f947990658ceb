// Builds what the app loads from dist/: the renderer (renderer/index.html -> dist/renderer, what `cnx
// serve` and Electron's app:// protocol serve), and with `--mode preload` Electron's preload script
// (main/electron/preload.ts -> dist/electron/preload.cjs: one CommonJS file, since a sandboxed preload can
// require nothing but 'electron'). `--mode bench` builds the frame-time bench page into dist/bench.
// Relative asset URLs ('./') let the same renderer build work from any origin.
import { fileURLToPath } from 'node:url';
import vue from '@vitejs/plugin-vue';
import { type UserConfig, defineConfig } from 'vite';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

const preload: UserConfig = {
  build: {
    outDir: here('./dist/electron/'),
    emptyOutDir: true,
    target: 'es2022',
    minify: false,
    lib: { entry: here('./main/electron/preload.ts'), formats: ['cjs'], fileName: () => 'preload.cjs' },
    rollupOptions: { external: ['electron'] },
  },
};

export default defineConfig(({ mode }) => {
  if (mode === 'preload') return preload;
  const bench = mode === 'bench';
  return {
    root: here(bench ? './renderer/bench/' : './renderer/'),
    base: './',
    plugins: [vue()],
    build: {
      outDir: here(bench ? './dist/bench/' : './dist/renderer/'),
      emptyOutDir: true,
      target: 'es2022',
      sourcemap: true,
      chunkSizeWarningLimit: 1024,
    },
    server: { fs: { allow: [here('./')] } },
  };
});
