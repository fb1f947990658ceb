// The frame-time bench page (built with `vite build --mode bench`, driven by test/bench/ui.ts): the real
// thumbnail grid with 100k items and the real line chart with a million points, with no server behind
// them, and measurements the driver calls through window.bench.
import { createApp } from 'vue';
import '../styles/app.css';
import BenchApp from './BenchApp.vue';

createApp(BenchApp).mount('#app');
