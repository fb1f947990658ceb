// System info: `cnx doctor --json` run as a child process, with the workspace's disk space and memory.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { Workbench } from '../../main/services/workbench.ts';
import { torchPython } from '../helpers/python.ts';
import { tempDir } from '../helpers/services.ts';

test('system info reports engines from cnx doctor, memory and the workspace disk', async () => {
  const torch = torchPython();
  const python = 'python' in torch ? torch.python : '/nonexistent/python3';
  const wb = await Workbench.open({ workspace: join(tempDir('system'), 'ws'), settings: { pythonPath: python } });
  try {
    const info = await wb.handlers['system.info']({ refresh: false });
    assert.equal(info.doctorError, null);
    assert.equal(info.engines.onnx.available, true);
    assert.ok(info.engines.onnx.providers.includes('cpu'));
    assert.equal(info.engines.torch.interpreter, python);
    assert.equal(info.engines.torch.available, 'python' in torch);
    // 'auto' picks torch only with a GPU it can use.
    assert.equal(info.autoEngine, info.gpus.length && info.engines.torch.available ? 'torch' : 'onnx');
    assert.ok(info.memory.totalBytes > info.memory.freeBytes && info.memory.freeBytes > 0);
    assert.ok(info.workspace.diskFreeBytes! > 0 && info.workspace.diskTotalBytes! >= info.workspace.diskFreeBytes!);
    assert.equal(info.host.kind, 'web');
    assert.equal((await wb.handlers['system.info']({ refresh: false })).checkedAt, info.checkedAt, 'cached');

    // A Python without torch: the report says so instead of failing.
    wb.settings.update({ pythonPath: '/nonexistent/python3' });
    wb.system.invalidate();
    const without = await wb.system.info();
    assert.equal(without.engines.torch.available, false);
    assert.ok(without.engines.torch.error);
    assert.equal(without.autoEngine, 'onnx');
  } finally {
    await wb.close();
  }
});
