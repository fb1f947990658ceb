// User settings, kept in the workspace database (the workspace itself is chosen before it is opened).
import { Settings, type SettingsUpdate } from '../../common/api.ts';
import type { z } from 'zod';
import type { EventHub } from './hub.ts';
import type { Store } from './store.ts';

const KEYS = ['pythonPath', 'defaultEngine', 'defaultDevice', 'cpuJobSlots', 'stallTimeoutSec'] as const;

export class SettingsService {
  private current: Settings;

  constructor(
    private readonly store: Store,
    private readonly hub: EventHub,
    defaults: Partial<Omit<Settings, 'workspace'>> = {},
  ) {
    const base: Settings = {
      workspace: store.workspace,
      pythonPath: '', // found by the rule of native-worker/torch-python.ts
      defaultEngine: 'auto',
      defaultDevice: 'auto',
      cpuJobSlots: 1,
      stallTimeoutSec: 1800,
      ...defaults,
    };
    const saved: Record<string, unknown> = {};
    for (const k of KEYS) {
      const v = store.setting(k);
      if (v !== undefined) saved[k] = v;
    }
    // A stored value this build no longer accepts falls back to its default rather than failing start-up.
    const merged = Settings.safeParse({ ...base, ...saved });
    this.current = merged.success ? merged.data : base;
  }

  get(): Settings {
    return { ...this.current };
  }

  update(patch: z.output<typeof SettingsUpdate>): Settings {
    const next = Settings.parse({ ...this.current, ...patch });
    this.store.setSettings(Object.fromEntries(KEYS.map((k) => [k, patch[k]])));
    this.current = next;
    this.hub.publish('settings', this.get());
    return this.get();
  }
}
