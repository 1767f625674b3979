/**
 * Peak resident memory of this process, in bytes.
 *
 * Linux: VmHWM from /proc/self/status, the high-water mark of this process's own memory. Not
 * `process.resourceUsage().maxRSS` there: a child's ru_maxrss starts at its parent's resident size when it forks
 * (the kernel keeps the pre-exec high-water mark), so a server launched by a 400 MB process, or a benchmark's
 * child, reports at least 400 MB whatever it used. Elsewhere maxRSS is the best there is.
 */
import { readFileSync } from 'node:fs';

export function peakResidentBytes(): number {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // no /proc: not Linux
  }
  return process.resourceUsage().maxRSS * 1024; // Node reports kB on every platform
}
