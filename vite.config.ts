// Builds the renderer (renderer/index.html) into dist/renderer, what `cnx serve` and Electron load. Relative
// asset URLs ('./') so the same build works from web mode's origin and from Electron's app protocol.
// `--mode bench` builds the frame-time bench page (renderer/bench/) into dist/bench instead.
import { fileURLToPath } from 'node:url';
import vue from '@vitejs/plugin-vue';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('./renderer/', import.meta.url));

export default defineConfig(({ mode }) => {
  const bench = mode === 'bench';
  return {
    root: bench ? `${root}bench/` : root,
    base: './',
    plugins: [vue()],
    build: {
      outDir: fileURLToPath(new URL(bench ? './dist/bench/' : './dist/renderer/', import.meta.url)),
      emptyOutDir: true,
      target: 'es2022',
      sourcemap: true,
      chunkSizeWarningLimit: 1024,
    },
    server: { fs: { allow: [fileURLToPath(new URL('./', import.meta.url))] } },
  };
});
