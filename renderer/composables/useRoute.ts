// The current route from the URL hash, as a ref shared by the app, and navigation that writes the hash
// (so the back button and reloads work).
import { type Ref, ref } from 'vue';
import { type Route, type ViewName, formatRoute, parseRoute } from '../lib/route.ts';

let shared: Ref<Route> | null = null;

export function useRoute(): Ref<Route> {
  if (!shared) {
    const r = ref(parseRoute(location.hash));
    window.addEventListener('hashchange', () => (r.value = parseRoute(location.hash)));
    shared = r;
  }
  return shared;
}

export function navigate(view: ViewName, id: string | null = null, query: Record<string, string | undefined> = {}, replace = false): void {
  const hash = formatRoute({ view, id, query });
  if (hash === location.hash) return;
  if (replace) {
    history.replaceState(null, '', hash);
    if (shared) shared.value = parseRoute(hash);
  } else location.hash = hash;
}
