// Page-wide keyboard shortcuts while a component is mounted. Keys typed into fields stay with the field,
// except Escape; a handler returning false lets the key through.
import { onBeforeUnmount, onMounted } from 'vue';

export type Hotkeys = Record<string, (e: KeyboardEvent) => boolean | void>;

/** 'ctrl+z' style name of a key event; ctrl also stands for cmd on macOS. */
export function keyName(e: KeyboardEvent): string {
  const mods = [e.ctrlKey || e.metaKey ? 'ctrl' : '', e.altKey ? 'alt' : '', e.shiftKey && e.key.length > 1 ? 'shift' : ''].filter(Boolean);
  return [...mods, e.key.length === 1 ? e.key.toLowerCase() : e.key].join('+');
}

export function isTyping(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  if (!el || !el.tagName) return false;
  return el.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName);
}

export function useHotkeys(keys: Hotkeys): void {
  const onKey = (e: KeyboardEvent) => {
    if (e.defaultPrevented) return;
    if (isTyping(e.target) && e.key !== 'Escape') return;
    const handler = keys[keyName(e)];
    if (handler && handler(e) !== false) e.preventDefault();
  };
  onMounted(() => window.addEventListener('keydown', onKey));
  onBeforeUnmount(() => window.removeEventListener('keydown', onKey));
}
