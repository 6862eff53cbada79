// Replays a trace written by examples/dawn_trace.rs on Dawn (the npm package `webgpu`,
// dawn.node): the same WGSL modules, the same bind group layout, the same writes, copies,
// clears and dispatches in the same order, and every read compared word for word with what the
// trace says (the CPU twin's words). Any shader compiler message, validation error, device loss
// or differing word fails the run (exit status 1).
//
// Usage: node replay.mjs TRACE_DIR --limits adapter|default [--break KERNEL]
//   adapter  asks the device for the adapter's limits, as hegpu does
//   default  asks for nothing: WebGPU's default limits
//   --break  replaces one entry point's body's first output store with a wrong word, to show
//            that the check fails when a kernel is broken

import { create, globals } from 'webgpu';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

Object.assign(globalThis, globals);

const args = process.argv.slice(2);
const dir = args[0];
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const limitsMode = option('--limits') ?? 'adapter';
const broken = option('--break');
if (!dir || !['adapter', 'default'].includes(limitsMode)) {
  console.error('usage: node replay.mjs TRACE_DIR --limits adapter|default [--break KERNEL]');
  process.exit(2);
}

const trace = JSON.parse(readFileSync(join(dir, 'trace.json'), 'utf8'));
const blobFile = readFileSync(join(dir, 'trace.bin'));
const blob = new Uint8Array(blobFile.buffer, blobFile.byteOffset, blobFile.byteLength);

const failures = [];
const fail = (what) => {
  failures.push(what);
  console.error(`FAIL: ${what}`);
};

const gpu = create(['backend=vulkan']);
const adapter = await gpu.requestAdapter();
if (!adapter) {
  console.error('dawn: no adapter (is VK_ICD_FILENAMES pointing at SwiftShader?)');
  process.exit(1);
}
const info = adapter.info;
const PARAM_BYTES = 64;
// As hegpu opens a device: with every limit the adapter has (or WebGPU's defaults).
const requiredLimits = {};
if (limitsMode === 'adapter') {
  for (const key of [
    'maxStorageBufferBindingSize',
    'maxBufferSize',
    'maxComputeWorkgroupStorageSize',
    'maxComputeWorkgroupsPerDimension',
  ]) {
    requiredLimits[key] = adapter.limits[key];
  }
}
const device = await adapter.requestDevice({ requiredLimits });
device.lost.then((l) => {
  if (l.reason !== 'destroyed') fail(`device lost: ${l.message}`);
});
device.addEventListener('uncapturederror', (e) => fail(`uncaptured: ${e.error.message}`));
console.log(
  `dawn: ${info.vendor} ${info.architecture} ${info.description} (${limitsMode} limits: ` +
    `${device.limits.maxStorageBufferBindingSize >> 20} MiB bindings, ` +
    `${device.limits.maxComputeWorkgroupStorageSize >> 10} KiB workgroup storage)`
);

const storage = (binding, type) => ({
  binding,
  visibility: GPUShaderStage.COMPUTE,
  buffer: { type },
});
const layout = device.createBindGroupLayout({
  entries: [
    {
      binding: 0,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: PARAM_BYTES },
    },
    storage(1, 'read-only-storage'),
    storage(2, 'read-only-storage'),
    storage(3, 'read-only-storage'),
    storage(4, 'read-only-storage'),
    storage(5, 'storage'),
  ],
});
const pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [layout] });

// The modules, each checked for compiler messages (Tint's warnings fail too).
const modules = {};
for (const [family, source] of Object.entries(trace.modules)) {
  let code = source;
  if (broken) {
    // Off by one in the entry point's first store to `out`.
    const at = code.indexOf(`fn ${broken}(`);
    if (at >= 0) {
      const store = code.indexOf('out[', at);
      const end = code.indexOf(';', store);
      code = code.slice(0, end) + ' + 1u' + code.slice(end);
      console.log(`broken on purpose: ${broken} (${family}.wgsl)`);
    }
  }
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: family, code });
  const compiled = await module.getCompilationInfo();
  for (const m of compiled.messages) {
    fail(`${family}.wgsl:${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`);
  }
  const error = await device.popErrorScope();
  if (error) fail(`${family}.wgsl: ${error.message}`);
  modules[family] = module;
}

const pipelines = new Map();
async function pipeline(family, entry) {
  const key = `${family}/${entry}`;
  if (!pipelines.has(key)) {
    device.pushErrorScope('validation');
    const p = device.createComputePipeline({
      label: entry,
      layout: pipelineLayout,
      compute: { module: modules[family], entryPoint: entry },
    });
    const error = await device.popErrorScope();
    if (error) fail(`pipeline ${entry}: ${error.message}`);
    pipelines.set(key, p);
  }
  return pipelines.get(key);
}

const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const buffers = trace.buffers.map((size, i) =>
  device.createBuffer({ label: `b${i}`, size: Math.max(4, Math.ceil(size / 4) * 4), usage })
);

// Parameters: one 256-byte slot per dispatch of a submission.
const SLOT = 256;
const SLOTS = 1024;
const paramBuffer = device.createBuffer({
  size: SLOT * SLOTS,
  usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
});
let encoder = null;
let params = new Uint8Array(SLOT * SLOTS);
let slots = 0;
const bindGroups = new Map();

function submit() {
  if (!encoder) return;
  device.queue.writeBuffer(paramBuffer, 0, params, 0, slots * SLOT);
  device.queue.submit([encoder.finish()]);
  encoder = null;
  slots = 0;
}
const open = () => (encoder ??= device.createCommandEncoder());

const dispatched = new Map();
let reads = 0;
let words = 0;
device.pushErrorScope('validation');
device.pushErrorScope('out-of-memory');
for (const [n, e] of trace.events.entries()) {
  switch (e.op) {
    case 'write':
      submit();
      device.queue.writeBuffer(buffers[e.buffer], e.offset, blob, e.at, e.len);
      break;
    case 'clear':
      open().clearBuffer(buffers[e.buffer]);
      break;
    case 'copy':
      open().copyBufferToBuffer(buffers[e.src], e.src_offset, buffers[e.dst], e.dst_offset, e.size);
      break;
    case 'dispatch': {
      if (slots === SLOTS) submit();
      const p = await pipeline(e.module, e.entry);
      const bytes = new Uint8Array(new Uint32Array(e.params).buffer);
      params.set(bytes, slots * SLOT);
      const key = e.bindings.join(',');
      if (!bindGroups.has(key)) {
        bindGroups.set(
          key,
          device.createBindGroup({
            layout,
            entries: [
              { binding: 0, resource: { buffer: paramBuffer, size: PARAM_BYTES } },
              ...e.bindings.map((b, i) => ({ binding: i + 1, resource: { buffer: buffers[b] } })),
            ],
          })
        );
      }
      const pass = open().beginComputePass({ label: e.entry });
      pass.setPipeline(p);
      pass.setBindGroup(0, bindGroups.get(key), [slots * SLOT]);
      pass.dispatchWorkgroups(e.grid[0], e.grid[1], 1);
      pass.end();
      slots += 1;
      dispatched.set(e.entry, (dispatched.get(e.entry) ?? 0) + 1);
      break;
    }
    case 'read': {
      submit();
      const staging = device.createBuffer({
        size: e.len,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      const enc = device.createCommandEncoder();
      enc.copyBufferToBuffer(buffers[e.buffer], 0, staging, 0, e.len);
      device.queue.submit([enc.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const got = new Uint32Array(staging.getMappedRange().slice(0));
      staging.unmap();
      staging.destroy();
      const want = new Uint32Array(blob.slice(e.at, e.at + e.len).buffer);
      const bad = got.findIndex((w, i) => w !== want[i]);
      if (bad >= 0) {
        const count = got.filter((w, i) => w !== want[i]).length;
        fail(
          `read ${reads} (event ${n}, buffer ${e.buffer}): word ${bad} is ${got[bad]}, ` +
            `the CPU twin's is ${want[bad]} (${count} of ${got.length} words differ)`
        );
      }
      reads += 1;
      words += got.length;
      break;
    }
    default:
      fail(`unknown event ${e.op}`);
  }
}
submit();
for (const scope of ['out-of-memory', 'validation']) {
  const error = await device.popErrorScope();
  if (error) fail(`${scope}: ${error.message}`);
}
await device.queue.onSubmittedWorkDone();

// Every entry point of every module ran.
for (const [family, source] of Object.entries(trace.modules)) {
  for (const m of source.matchAll(/@compute[^\n]*\n\s*fn (\w+)\(/g)) {
    if (!dispatched.has(m[1])) fail(`${family}.wgsl: ${m[1]} never ran`);
  }
}
const counts = [...dispatched.entries()].map(([k, v]) => `${k} ${v}`).join(', ');
console.log(`dispatches: ${counts}`);
console.log(`${reads} reads, ${words} words compared`);
device.destroy();
if (failures.length > 0) {
  console.error(`${failures.length} failures`);
  process.exit(1);
}
console.log('every read equals the CPU twin');
process.exit(0);
