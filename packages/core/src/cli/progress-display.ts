/**
 * Turns executor events into terminal output: one line per node, a live bar for steps (sampler progress)
 * on a TTY, and plain milestone lines when the output is a file or CI log.
 */
import cliProgress from 'cli-progress';
import type { ExecutionEvent } from '../events.ts';
import type { ApiPrompt } from '../workflow/api-format.ts';

export class ProgressDisplay {
  #bar: cliProgress.SingleBar | undefined;
  #barNode: string | undefined;
  #lastPlainPercent = -1;
  readonly #started = new Map<string, number>();

  constructor(
    private readonly prompt: ApiPrompt,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly quiet = false,
  ) {}

  handle(event: ExecutionEvent): void {
    if (this.quiet) return;
    switch (event.type) {
      case 'execution_cached':
        if (event.data.nodes.length) this.#line(`cached: ${event.data.nodes.map((id) => this.#label(id)).join(', ')}`);
        break;
      case 'executing':
        this.#endBar();
        if (event.data.node !== null) {
          this.#started.set(event.data.node, performance.now());
          this.#line(`▶ ${this.#label(event.data.node)}`);
        }
        break;
      case 'progress':
        this.#progress(event.data.node, event.data.value, event.data.max);
        break;
      case 'executed':
      case 'execution_success':
      case 'execution_error':
      case 'execution_interrupted':
        this.#endBar();
        break;
      default:
        break;
    }
  }

  /** Stops any live bar; call before printing a final summary. */
  close(): void {
    this.#endBar();
  }

  #label(id: string): string {
    const node = this.prompt[id];
    const title = node?._meta?.title;
    const type = node?.class_type ?? '?';
    return title && title !== type ? `${title} (${type} #${id})` : `${type} #${id}`;
  }

  #progress(node: string, value: number, max: number): void {
    if (this.out.isTTY) {
      if (!this.#bar || this.#barNode !== node) {
        this.#endBar();
        this.#bar = new cliProgress.SingleBar(
          { stream: this.out, format: '  {bar} {value}/{total} steps | {duration_formatted} elapsed | eta {eta_formatted}', hideCursor: true, clearOnComplete: false },
          cliProgress.Presets.shades_classic,
        );
        this.#bar.start(max, value);
        this.#barNode = node;
      } else {
        this.#bar.setTotal(max);
        this.#bar.update(value);
      }
      return;
    }
    // Not a terminal: print at most about ten lines per progress run, and always the last step.
    const percent = Math.floor((value / Math.max(1, max)) * 10);
    if (percent !== this.#lastPlainPercent || value === max) {
      this.#lastPlainPercent = percent;
      this.#line(`  step ${value}/${max}`);
    }
  }

  #endBar(): void {
    if (this.#bar) {
      this.#bar.stop();
      this.#bar = undefined;
      this.#barNode = undefined;
    }
    this.#lastPlainPercent = -1;
  }

  #line(text: string): void {
    this.out.write(text + '\n');
  }
}
