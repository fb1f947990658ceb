// Settings and what the machine offers (engines, devices, disk), for the Settings view and for the
// training form's checks. Settings changes from elsewhere arrive on the settings stream.
import { defineStore } from 'pinia';
import { ref, shallowRef } from 'vue';
import type { ApiRequest, Settings, SystemInfo } from '../../common/api.ts';
import { api } from '../api/client.ts';
import { type ShownError, shownError } from '../lib/errors.ts';

export const useSystemStore = defineStore('system', () => {
  const settings = ref<Settings | null>(null);
  const info = shallowRef<SystemInfo | null>(null);
  const loadingInfo = ref(false);
  const saving = ref(false);
  const settingsError = ref<ShownError | null>(null);
  const infoError = ref<ShownError | null>(null);
  const saveError = ref<ShownError | null>(null);
  let stop: (() => void) | null = null;

  async function loadSettings(): Promise<void> {
    try {
      settings.value = await api().settings.get({});
      settingsError.value = null;
    } catch (e) {
      settingsError.value = shownError(e);
    }
  }

  /** `refresh`: probe the engines again (`cnx doctor`), e.g. after installing torch. */
  async function loadInfo(refresh = false): Promise<void> {
    loadingInfo.value = true;
    try {
      info.value = await api().system.info({ refresh });
      infoError.value = null;
    } catch (e) {
      infoError.value = shownError(e);
    } finally {
      loadingInfo.value = false;
    }
  }

  async function save(update: ApiRequest<'settings.update'>): Promise<boolean> {
    saving.value = true;
    try {
      const before = settings.value?.pythonPath;
      settings.value = await api().settings.update(update);
      saveError.value = null;
      // A new interpreter changes what the PyTorch engine can do: probe again.
      if (update.pythonPath !== undefined && update.pythonPath !== before) void loadInfo(true);
      return true;
    } catch (e) {
      saveError.value = shownError(e);
      return false;
    } finally {
      saving.value = false;
    }
  }

  function connect(): void {
    stop ??= api().onSettings((s) => (settings.value = s));
  }

  function disconnect(): void {
    stop?.();
    stop = null;
  }

  return { settings, info, loadingInfo, saving, settingsError, infoError, saveError, loadSettings, loadInfo, save, connect, disconnect };
});
