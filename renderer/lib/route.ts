// The app's address lives in the URL hash (#/runs/<id>?tab=logs), so views can be linked, reloaded and
// navigated with the browser's back button, in web mode and in Electron alike, without a router library.

export const VIEWS = ['datasets', 'train', 'runs', 'reconstructions', 'compare', 'models', 'try', 'settings'] as const;
export type ViewName = (typeof VIEWS)[number];

export interface Route {
  view: ViewName;
  /** The object the view shows: a dataset name or a run id. */
  id: string | null;
  query: Readonly<Record<string, string>>;
}

export const HOME: Route = { view: 'datasets', id: null, query: {} };

export function parseRoute(hash: string): Route {
  const text = hash.replace(/^#\/?/, '');
  const [path = '', search = ''] = text.split('?', 2);
  const [view, ...rest] = path.split('/');
  if (!VIEWS.includes(view as ViewName)) return HOME;
  let id: string | null = null;
  try {
    id = rest.length && rest.join('/') ? decodeURIComponent(rest.join('/')) : null;
  } catch {
    id = null;
  }
  const query: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(search)) query[k] = v;
  return { view: view as ViewName, id, query };
}

export function formatRoute(r: { view: ViewName; id?: string | null; query?: Readonly<Record<string, string | undefined>> }): string {
  let s = `#/${r.view}`;
  if (r.id) s += `/${encodeURIComponent(r.id)}`;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(r.query ?? {})) if (v !== undefined && v !== '') q.set(k, v);
  const qs = q.toString();
  return qs ? `${s}?${qs}` : s;
}
