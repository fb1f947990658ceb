// App-wide UI state: the colour theme, the event connection, and the shortcut help. Nothing here talks to
// the backend; the theme is applied and remembered by the useTheme composable (it needs the DOM).
import { defineStore } from 'pinia';
import { ref } from 'vue';
import type { ConnectionState } from '../api/transport-http.ts';

export type ThemeChoice = 'system' | 'light' | 'dark';

export const useUiStore = defineStore('ui', () => {
  const theme = ref<ThemeChoice>('system');
  const connection = ref<ConnectionState>('open');
  /** Bumped when the event stream comes back after a drop: stores refetch what they may have missed. */
  const reconnects = ref(0);
  const shortcutsOpen = ref(false);

  function setConnection(state: ConnectionState): void {
    if (state === 'open' && connection.value !== 'open') reconnects.value++;
    connection.value = state;
  }

  return { theme, connection, reconnects, shortcutsOpen, setConnection };
});
