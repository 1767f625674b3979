/**
 * Widgets for the widget-typed inputs of /object_info, with ComfyUI's behaviour: INT/FLOAT number widgets that
 * clamp to min/max and snap to step/round, sliders for `display: "slider"`, multiline STRING textareas,
 * BOOLEAN toggles with their labels, COMBO lists, and the seed's "control after generate" combo.
 */
import { addTextareaWidget } from './dom-widgets.ts';
import type { InputSpec, WidgetSlot } from './core.ts';
import type { EditorNode, EditorWidget } from './node-state.ts';

export const CONTROL_MODES = ['fixed', 'increment', 'decrement', 'randomize'] as const;
export type ControlMode = (typeof CONTROL_MODES)[number];
export const CONTROL_WIDGET_NAME = 'control_after_generate';

/** The largest seed ComfyUI randomizes to (2^50): exact in a double and in JSON. */
const MAX_RANDOM_SEED = 1125899906842624;

type WidgetSpec = Exclude<InputSpec, { kind: 'SOCKET' }>;

/** Adds the widget(s) of one input; returns the value widget (the control combo, if any, follows it). */
export function addInputWidget(node: EditorNode, slot: WidgetSlot, onChange: () => void): EditorWidget {
  const { name, spec } = slot;
  const widget = createWidget(node, name, spec, onChange);
  if (spec.tooltip) widget.tooltip = spec.tooltip;
  if (slot.extraValues > 0) {
    const control = node.addWidget('combo', CONTROL_WIDGET_NAME, 'randomize', () => onChange(), {
      values: [...CONTROL_MODES],
    }) as EditorWidget;
    control.linkedWidget = widget;
    control.label = 'control after generate';
    control.tooltip = `What happens to ${name} after each queued prompt: kept (fixed), +1, -1, or a new random value.`;
  }
  return widget;
}

function createWidget(node: EditorNode, name: string, spec: WidgetSpec, onChange: () => void): EditorWidget {
  switch (spec.kind) {
    case 'INT':
    case 'FLOAT': {
      const isInt = spec.kind === 'INT';
      const step = spec.step ?? (isInt ? 1 : 0.1);
      const round = spec.kind === 'FLOAT' ? (spec.round === undefined ? step : spec.round) : 1;
      const precision = isInt ? 0 : decimals(round === false ? step : round);
      const normalize = (value: number): number => {
        let v = Number.isFinite(value) ? value : (spec.default ?? 0);
        if (spec.min !== undefined) v = Math.max(spec.min, v);
        if (spec.max !== undefined) v = Math.min(spec.max, v);
        if (isInt) {
          const base = spec.min ?? 0;
          v = step > 1 ? Math.round((v - base) / step) * step + base : Math.round(v);
          if (spec.max !== undefined && v > spec.max) v -= step;
        } else if (round !== false && round > 0) {
          v = Number((Math.round(v / round) * round).toFixed(precision));
        }
        return v;
      };
      const type = spec.display === 'slider' && spec.min !== undefined && spec.max !== undefined ? 'slider' : 'number';
      const widget = node.addWidget(
        type,
        name,
        normalize(spec.default ?? spec.min ?? 0),
        (value: number) => {
          const fixed = normalize(Number(value));
          if (fixed !== widget.value) widget.value = fixed;
          onChange();
        },
        // litegraph steps number widgets by a tenth of `step` per click (ComfyUI passes step * 10 too).
        { min: spec.min, max: spec.max, step: step * 10, precision, round },
      ) as EditorWidget;
      keepNumbers(widget);
      return widget;
    }
    case 'STRING':
      if (spec.multiline) {
        return addTextareaWidget(node, name, spec.default ?? '', {
          ...(spec.placeholder ? { placeholder: spec.placeholder } : {}),
          ...(spec.tooltip ? { tooltip: spec.tooltip } : {}),
        });
      }
      return node.addWidget('text', name, spec.default ?? '', () => onChange(), {}) as EditorWidget;
    case 'BOOLEAN':
      return node.addWidget('toggle', name, spec.default ?? false, () => onChange(), {
        on: spec.labelOn ?? 'true',
        off: spec.labelOff ?? 'false',
      }) as EditorWidget;
    case 'COMBO': {
      const values = typeof spec.options === 'function' ? [...spec.options({})] : [...spec.options];
      const initial = spec.default !== undefined && values.includes(spec.default) ? spec.default : (values[0] ?? '');
      return node.addWidget('combo', name, initial, () => onChange(), { values }) as EditorWidget;
    }
  }
}

let invalidNumber: (widget: EditorWidget, kept: number) => void = () => undefined;
/** Where a refused number is reported (set once at start-up: a toast). */
export function setInvalidNumberHandler(handler: (widget: EditorWidget, kept: number) => void): void {
  invalidNumber = handler;
}

/**
 * A number widget keeps its value when it is given something that is not a number: litegraph's value prompt
 * assigns `Number(text)` (NaN for "abc") before any callback runs, and the normalizer would then put the
 * default in. The value becomes a guarded property that refuses non-finite numbers and says so.
 */
function keepNumbers(widget: EditorWidget): void {
  let value = widget.value as number;
  Object.defineProperty(widget, 'value', {
    configurable: true,
    enumerable: true,
    get: () => value,
    set: (next: unknown) => {
      const number = typeof next === 'string' && next.trim() !== '' ? Number(next) : next;
      if (typeof number === 'number' && Number.isFinite(number)) value = number;
      else invalidNumber(widget, value);
    },
  });
}

/**
 * ComfyUI's "control after generate": after a prompt is queued, each seed widget moves on as its control
 * widget says, so the next queue differs (or, on `fixed`, hits the cache). Returns the widgets changed.
 */
export function applyControlAfterGenerate(nodes: EditorNode[]): EditorWidget[] {
  const changed: EditorWidget[] = [];
  for (const node of nodes) {
    // Muted (2) and bypassed (4) nodes are not queued, so their seeds stay.
    if ((node.mode as number) === 2 || (node.mode as number) === 4) continue;
    for (const control of node.widgets ?? []) {
      const target = control.linkedWidget;
      if (!target || control.name !== CONTROL_WIDGET_NAME) continue;
      const options = target.options as { min?: number; max?: number; step?: number };
      const min = options.min ?? 0;
      const max = Math.min(options.max ?? MAX_RANDOM_SEED, MAX_RANDOM_SEED);
      const step = (options.step ?? 10) / 10;
      const current = Number(target.value);
      let next = current;
      switch (control.value as ControlMode) {
        case 'increment':
          next = current + step;
          break;
        case 'decrement':
          next = current - step;
          break;
        case 'randomize':
          next = Math.floor(Math.random() * ((max - min) / step + 1)) * step + min;
          break;
        default:
          continue;
      }
      next = Math.min(max, Math.max(min, next));
      if (next !== current) {
        target.value = next;
        changed.push(target);
      }
    }
  }
  return changed;
}

function decimals(step: number): number {
  if (!Number.isFinite(step) || step <= 0) return 2;
  const text = String(step);
  const exp = /e-(\d+)$/.exec(text);
  if (exp) return Math.min(10, Number(exp[1]));
  const dot = text.indexOf('.');
  return dot === -1 ? 0 : Math.min(10, text.length - dot - 1);
}
