/**
 * Peak resident memory of THIS process, for the benches' per-configuration child processes.
 *
 * Not `process.resourceUsage().maxRSS`: on Linux a child's ru_maxrss starts from the parent's resident size at
 * fork (the kernel folds the pre-exec memory's high-water mark into it), so every child of a bench parent
 * holding 400 MB reported >= 400 MB whatever it did. /proc/self/status's VmHWM is the high-water mark of the
 * exec'd process's own memory.
 */
import { readFileSync } from 'node:fs';

export function peakRssMB(): number {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]) / 1024;
  } catch {
    // not Linux: fall through
  }
  // Elsewhere maxRSS is the best there is (macOS reports bytes, Node normalizes to kB).
  return process.resourceUsage().maxRSS / 1024;
}
