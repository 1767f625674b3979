/**
 * What the benchmarks share: command-line options, medians and time formatting, the CPU time of the whole machine
 * and of one process (to tell how much of the CPU other work took during timed rounds: loadMeter), peak
 * resident memory, and the eager-PyTorch child (bench/sd15_torch.py) driven over a pipe so that its calls alternate
 * with onnxruntime's. A module, not a benchmark: run on its own (scripts/run-bench.mjs runs every file here) it does
 * nothing.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
/** Debian's interpreter: the one with torch 1.13 and onnx (the python3 on PATH may be another). */
export const python = '/usr/bin/python3';

/** `--name value` options and `--name` flags of a bench's command line. */
export function cliOptions(args: readonly string[]) {
  const option = (name: string, fallback: string): string => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
  };
  const positiveInt = (name: string, fallback: string): number => {
    const v = Number(option(name, fallback));
    if (!Number.isInteger(v) || v < 1) {
      console.error(`--${name} must be a whole number >= 1; got "${option(name, fallback)}"`);
      process.exit(2);
    }
    return v;
  };
  return { option, positiveInt, flag: (name: string) => args.includes(`--${name}`) };
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
export const ms = (x: number): string => (x >= 10_000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(x >= 100 ? 0 : 1)} ms`);
export const gflops = (flops: number, milliseconds: number): number => flops / milliseconds / 1e6;

/**
 * CPU seconds of the whole machine since boot (all cores), from /proc/stat: busy, and stolen (time the hypervisor
 * gave this VM's vCPUs to other guests while they had work: a busy host slows every engine without any process here
 * showing it).
 */
export function machineCpuSeconds(): { busy: number; steal: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const [user, nice, system, , , irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  return { busy: (user + nice + system + irq + softirq) / 100, steal: (steal ?? 0) / 100 };
}

/** User + system CPU seconds of a process, from /proc/<pid>/stat (clock ticks of 1/100 s). */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A /proc/<pid>/status field in kB (VmHWM, VmRSS, ...) as MB; NaN where it cannot be read. */
function statusMB(pid: number | 'self', field: string): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Peak resident memory of a process (VmHWM), in MB. Not `process.resourceUsage().maxRSS`: a child's ru_maxrss
 * starts at its parent's resident size (see packages/server/src/process-memory.ts).
 */
export const peakRssMB = (pid: number | 'self'): number => statusMB(pid, 'VmHWM');
/** Resident memory now (VmRSS), in MB. */
export const rssMB = (pid: number | 'self'): number => statusMB(pid, 'VmRSS');

/**
 * Sets this process's VmHWM back to its current RSS (Linux: `5` into /proc/self/clear_refs), so that the next
 * peakRssMB('self') is the peak of what runs after this call. Returns false where the kernel does not allow it.
 */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** MemAvailable from /proc/meminfo, in MB: what can still be allocated without swapping or the OOM killer. */
export function memAvailableMB(): number {
  const match = /^MemAvailable:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

/**
 * The eager-PyTorch side: bench/sd15_torch.py as a child process, one JSON command per line on its stdin and one
 * JSON answer per line on its stdout (the protocol is in that file). Started early, so that it builds its module
 * and checks the weights while onnxruntime opens its sessions.
 */
export class TorchSide {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;
  #stderr = '';
  /** `scriptArgs`: sd15_torch.py's arguments (--unet, --threads, ...). */
  constructor(scriptArgs: readonly string[]) {
    this.#child = spawn(python, [join(repoRoot, 'bench', 'sd15_torch.py'), ...scriptArgs], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stderr.on('data', (d: Buffer) => {
      this.#stderr += d.toString();
      process.stderr.write(d);
    });
    this.#lines = createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]();
  }
  get pid(): number {
    return this.#child.pid!;
  }
  async #read(): Promise<Record<string, unknown>> {
    const next = await this.#lines.next();
    if (next.done) {
      const code = await new Promise<number | null>((r) => (this.#child.exitCode !== null ? r(this.#child.exitCode) : this.#child.once('exit', r)));
      throw Object.assign(new Error(`the PyTorch child exited (code ${code}): ${this.#stderr.trim().split('\n').at(-1) ?? ''}`), { exitCode: code });
    }
    return JSON.parse(next.value) as Record<string, unknown>;
  }
  /** The child's first line, once it has built the module and checked its weights; undefined when torch is missing. */
  async ready(): Promise<Record<string, unknown> | undefined> {
    try {
      return await this.#read();
    } catch (err) {
      if ((err as { exitCode?: number }).exitCode === 3) return undefined;
      throw err;
    }
  }
  async ask<T>(cmd: Record<string, unknown>): Promise<T> {
    this.#child.stdin.write(`${JSON.stringify(cmd)}\n`);
    const reply = await this.#read();
    if ('error' in reply) throw new Error(`the PyTorch child: ${String(reply.error)}`);
    return reply as T;
  }
  /**
   * One eager forward at timestep 500 on the given sample [batch, 4, h, w] and text context, exchanged through
   * files in a temporary folder (megabytes do not belong on the line protocol): its output and the child's time.
   */
  async forward(sample: Float32Array, context: Float32Array, batch: number, size: number): Promise<{ out: Float32Array; ms: number }> {
    const dir = mkdtempSync(join(tmpdir(), 'gategraph-torch-'));
    try {
      writeFileSync(join(dir, 'sample.f32'), sample);
      writeFileSync(join(dir, 'timestep.f32'), new Float32Array(batch).fill(500));
      writeFileSync(join(dir, 'context.f32'), context);
      const r = await this.ask<{ ms: number }>({ cmd: 'forward', dir, batch, size });
      const bytes = readFileSync(join(dir, 'torch_out.f32'));
      return { out: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), ms: r.ms };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  quit(): void {
    this.#child.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
  }
}

/** Relative L2 error of `x` against the reference `ref`, max |x - ref| and max |ref|. */
export function compareOutputs(x: ArrayLike<number>, ref: ArrayLike<number>): { rel: number; maxDiff: number; maxRef: number; sameLength: boolean } {
  let diff2 = 0;
  let ref2 = 0;
  let maxDiff = 0;
  let maxRef = 0;
  const n = Math.min(x.length, ref.length);
  for (let i = 0; i < n; i++) {
    const d = x[i]! - ref[i]!;
    diff2 += d * d;
    ref2 += ref[i]! * ref[i]!;
    maxDiff = Math.max(maxDiff, Math.abs(d));
    maxRef = Math.max(maxRef, Math.abs(ref[i]!));
  }
  return { rel: Math.sqrt(diff2 / ref2), maxDiff, maxRef, sameLength: x.length === ref.length };
}

/** What else the machine did during timed rounds: other processes' cores and the hypervisor's steal. */
export interface LoadReport {
  wallS: number;
  othersCores: number;
  stealCores: number;
  load1AtEnd: number;
}

/**
 * Starts measuring the machine's load; `stop()` says how many cores other processes used on average since (the
 * machine's busy time less this process's and `childPid`'s) and how many the hypervisor stole.
 */
export function loadMeter(childPid?: number): { stop(): LoadReport } {
  const cpu0 = machineCpuSeconds();
  const own0 = process.cpuUsage();
  const child0 = childPid !== undefined ? processCpuSeconds(childPid) : 0;
  const wall0 = performance.now();
  return {
    stop() {
      const wallS = (performance.now() - wall0) / 1000;
      const ownCpu = process.cpuUsage(own0);
      const oursS = (ownCpu.user + ownCpu.system) / 1e6 + (childPid !== undefined ? processCpuSeconds(childPid) - child0 : 0);
      const cpu1 = machineCpuSeconds();
      return {
        wallS,
        othersCores: Math.max(0, (cpu1.busy - cpu0.busy - oursS) / wallS),
        stealCores: (cpu1.steal - cpu0.steal) / wallS,
        load1AtEnd: loadavg()[0]!,
      };
    },
  };
}

// ==== benches with child processes (one measurement per process, so that its peak RSS is its own) ==============
/** RSS figures in MB of 2^20 bytes (VmHWM / 1024, as the benches print them); file sizes in GB of 1e9 bytes. */
export const mb = (bytes: number) => bytes / 2 ** 20;
export const gbOfBytes = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;
export const sec = (s: number) => `${s.toFixed(1)} s`;
/** The last stdout line of a child starts with this, followed by its JSON result. */
export const CHILD_RESULT = 'RESULT ';

export type Phase = { name: string; seconds: number; peakMB: number };
/**
 * Phases of a child: each ends with its wall time and peak RSS, and the peak is reset for the next (when the kernel
 * allows it; otherwise every phase reports the peak so far).
 */
export function phases() {
  const list: Phase[] = [];
  const resettable = resetPeakRss();
  let name = 'start';
  let t = performance.now();
  return {
    resettable,
    list,
    next(nextName: string) {
      list.push({ name, seconds: (performance.now() - t) / 1000, peakMB: peakRssMB('self') });
      resetPeakRss();
      name = nextName;
      t = performance.now();
    },
  };
}

/**
 * Runs `script` again as a child in the role `role` (`--child <role>`, with the parent's other arguments and
 * `extra`); resolves with the JSON its CHILD_RESULT line carries, rejects when it fails.
 */
export function runChildRole<T>(script: string, args: readonly string[], role: string, extra: string[] = []): Promise<T> {
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, [...process.execArgv, script, '--child', role, ...args.filter((a) => a !== '--child'), ...extra], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith(CHILD_RESULT));
      if (code === 0 && line) res(JSON.parse(line.slice(CHILD_RESULT.length)) as T);
      else rej(new Error(`the ${role} child failed (exit ${code})`));
    });
  });
}
