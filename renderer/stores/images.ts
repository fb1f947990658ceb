// The images of the open dataset as the thumbnail grid pages through them: the filter, the total, pages of
// PAGE_SIZE fetched on demand for what is on screen (the newest wish first, at most two requests in flight,
// pages scrolled past forgotten), and the selection. Pages live outside Vue's reactivity; `revision` ticks
// when one arrives, so 100k images never become 100k reactive objects.
import { defineStore } from 'pinia';
import { ref, shallowRef } from 'vue';
import type { ApiRequest, ImageInfo } from '../../common/api.ts';
import type { Split } from '../../common/manifest.ts';
import { api } from '../api/client.ts';
import { type ShownError, shownError } from '../lib/errors.ts';
import { pagesFor } from '../lib/virtual-grid.ts';

export const PAGE_SIZE = 200;
/** Pages kept in memory: a few screens around the visible one on any display. */
const KEEP_PAGES = 60;
const PARALLEL = 2;

export type StatusFilter = 'usable' | 'corrupt' | 'excluded' | 'all';

export interface ImageFilter {
  split: Split | 'all';
  /** A class name, ANY_LABEL, or NO_LABEL for unlabeled images. */
  label: string;
  status: StatusFilter;
  search: string;
}

export const ANY_LABEL = '\u0000any';
export const NO_LABEL = '\u0000none';
export const DEFAULT_FILTER: Readonly<ImageFilter> = { split: 'all', label: ANY_LABEL, status: 'usable', search: '' };

/** An image as the grid shows it: what the catalog lists, or the few fields a duplicate group carries. */
export type GridImage = Pick<ImageInfo, 'path' | 'label' | 'split'> & Partial<ImageInfo>;

export function imagesQuery(dataset: string, f: ImageFilter, offset: number, limit: number): ApiRequest<'datasets.images'> {
  return {
    name: dataset,
    offset,
    limit,
    status: f.status,
    ...(f.split !== 'all' ? { split: f.split } : {}),
    ...(f.label === NO_LABEL ? { label: null } : f.label !== ANY_LABEL ? { label: f.label } : {}),
    ...(f.search.trim() ? { search: f.search.trim() } : {}),
  };
}

export const useImagesStore = defineStore('images', () => {
  const dataset = ref<string | null>(null);
  const filter = ref<ImageFilter>({ ...DEFAULT_FILTER });
  /** A fixed list (a duplicate group review) instead of the catalog query. */
  const fixed = shallowRef<GridImage[] | null>(null);
  const total = ref<number | null>(null);
  const revision = ref(0);
  const error = ref<ShownError | null>(null);
  const selected = shallowRef<ReadonlySet<string>>(new Set());
  const focusIndex = ref(0);

  const pages = new Map<number, GridImage[]>();
  const inFlight = new Set<number>();
  let wanted: number[] = [];
  let generation = 0;

  function reset(keepTotal: boolean): void {
    generation++;
    pages.clear();
    inFlight.clear();
    wanted = [];
    if (!keepTotal) total.value = null;
    revision.value++;
  }

  /** Shows a dataset with a filter (the first page loads at once, for the total). */
  async function show(name: string, f: ImageFilter = filter.value): Promise<void> {
    dataset.value = name;
    filter.value = { ...f };
    fixed.value = null;
    selected.value = new Set();
    focusIndex.value = 0;
    reset(false);
    await ensure(0, PAGE_SIZE);
  }

  async function setFilter(f: Partial<ImageFilter>): Promise<void> {
    if (!dataset.value) return;
    await show(dataset.value, { ...filter.value, ...f });
  }

  /** Shows a fixed list of images (no paging needed). */
  function showList(items: GridImage[]): void {
    fixed.value = items;
    selected.value = new Set();
    focusIndex.value = 0;
    reset(true);
    total.value = items.length;
  }

  /** Refetches what is on screen after an edit (same filter, same scroll position). */
  async function refresh(): Promise<void> {
    if (!dataset.value || fixed.value) return;
    const keep = wanted.length ? wanted : [0];
    reset(true);
    wanted = keep;
    await pump();
  }

  function itemAt(index: number): GridImage | undefined {
    if (fixed.value) return fixed.value[index];
    return pages.get(Math.floor(index / PAGE_SIZE))?.[index % PAGE_SIZE];
  }

  /** Asks for the items in [from, end): missing pages load, nearest first. */
  async function ensure(from: number, end: number): Promise<void> {
    if (fixed.value || !dataset.value) return;
    wanted = pagesFor(from, Math.max(end, from + 1), PAGE_SIZE);
    await pump();
  }

  async function pump(): Promise<void> {
    const gen = generation;
    const name = dataset.value;
    if (!name) return;
    const jobs: Promise<void>[] = [];
    for (const page of wanted) {
      if (inFlight.size >= PARALLEL) break;
      if (pages.has(page) || inFlight.has(page)) continue;
      if (total.value !== null && page * PAGE_SIZE >= total.value && page > 0) continue;
      inFlight.add(page);
      jobs.push(
        (async () => {
          try {
            const res = await api().datasets.images(imagesQuery(name, filter.value, page * PAGE_SIZE, PAGE_SIZE));
            if (gen !== generation) return;
            pages.set(page, res.items);
            total.value = res.total;
            error.value = null;
            forgetFarPages();
            revision.value++;
          } catch (e) {
            if (gen === generation) error.value = shownError(e);
          } finally {
            if (gen === generation) inFlight.delete(page);
          }
          // A newer wish may be waiting for this slot.
          if (gen === generation && !error.value) await pump();
        })(),
      );
    }
    await Promise.all(jobs);
  }

  function forgetFarPages(): void {
    if (pages.size <= KEEP_PAGES) return;
    const centre = wanted[Math.floor(wanted.length / 2)] ?? 0;
    const far = [...pages.keys()].sort((a, b) => Math.abs(b - centre) - Math.abs(a - centre));
    for (const p of far.slice(0, pages.size - KEEP_PAGES)) pages.delete(p);
  }

  // ---- selection: click selects one, ctrl/cmd toggles, shift extends from the anchor (loaded items only)

  let anchor = 0;

  function select(index: number, mode: 'one' | 'toggle' | 'range'): void {
    const item = itemAt(index);
    if (!item) return;
    const next = new Set(mode === 'one' ? [] : selected.value);
    if (mode === 'range') {
      const [a, b] = anchor < index ? [anchor, index] : [index, anchor];
      for (let i = a; i <= b; i++) {
        const it = itemAt(i);
        if (it) next.add(it.path);
      }
    } else if (mode === 'toggle' && next.has(item.path)) next.delete(item.path);
    else next.add(item.path);
    if (mode !== 'range') anchor = index;
    selected.value = next;
    focusIndex.value = index;
  }

  function clearSelection(): void {
    selected.value = new Set();
  }

  return { dataset, filter, fixed, total, revision, error, selected, focusIndex, show, setFilter, showList, refresh, itemAt, ensure, select, clearSelection };
});
