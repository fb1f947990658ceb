// Applies the theme choice to <html data-theme> ('system' follows the OS and its changes) and remembers it.
import { watch } from 'vue';
import { type ThemeChoice, useUiStore } from '../stores/ui.ts';

const KEY = 'cnx.theme';

export function useTheme(): void {
  const ui = useUiStore();
  const saved = localStorage.getItem(KEY);
  if (saved === 'light' || saved === 'dark' || saved === 'system') ui.theme = saved;
  const media = window.matchMedia('(prefers-color-scheme: dark)');
  const apply = () => {
    const dark = ui.theme === 'dark' || (ui.theme === 'system' && media.matches);
    document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  };
  media.addEventListener('change', apply);
  watch(
    () => ui.theme,
    (t: ThemeChoice) => {
      localStorage.setItem(KEY, t);
      apply();
    },
    { immediate: true },
  );
}
