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
export const CONTROL_FILTER_NAME = 'control_filter_list';

/** The largest seed ComfyUI randomizes to (2^50): exact in a double and in JSON. */
const MAX_RANDOM_SEED = 1125899906842624;

type WidgetSpec = Exclude<InputSpec, { kind: 'SOCKET' }>;

/** Adds the widget(s) of one input; returns the value widget (the control combo, if any, follows it). */
export function addInputWidget(node: EditorNode, slot: WidgetSlot, onChange: () => void): EditorWidget {
  const { name, spec } = slot;
  const widget = createWidget(node, name, spec, onChange);
  if (spec.tooltip) widget.tooltip = spec.tooltip;
  if (slot.extraValues > 0) addControlWidget(node, widget, 'randomize', onChange);
  return widget;
}

/** When controlled values move on: after each queued prompt (ComfyUI's default) or before it. */
let controlMode: 'after' | 'before' = 'after';
const controlLabel = () => `control ${controlMode} generate`;

/**
 * The "control after generate" combo after a value widget: what happens to the value at each queued prompt.
 * On a combo (a Primitive feeding one) a filter text follows it, as in ComfyUI: increment, decrement and
 * randomize then only pick among the choices that match it (a substring, or a /regular expression/).
 */
export function addControlWidget(node: EditorNode, target: EditorWidget, initial: ControlMode, onChange: () => void): EditorWidget {
  const control = node.addWidget('combo', CONTROL_WIDGET_NAME, initial, () => onChange(), {
    values: [...CONTROL_MODES],
  }) as EditorWidget;
  control.linkedWidget = target;
  control.label = controlLabel();
  control.tooltip = `What happens to ${target.name} at each queued prompt: kept (fixed), +1 / next choice, -1 / previous choice, or a random value.`;
  if (target.type === 'combo') {
    const filter = node.addWidget('text', CONTROL_FILTER_NAME, '', () => onChange(), {}) as EditorWidget;
    filter.label = 'control filter list';
    // Linked to the same widget: saved and read back with its control, never taken for an input's value.
    filter.linkedWidget = target;
    filter.tooltip = 'Increment, decrement and randomize pick only among the choices containing this text (or matching /a regular expression/)';
    control.filterWidget = filter;
  }
  return control;
}

/** Follows `Comfy.WidgetControlMode`: the label of every control widget says when it acts. */
export function setControlMode(mode: 'after' | 'before', nodes: EditorNode[]): void {
  controlMode = mode;
  for (const node of nodes) for (const widget of node.widgets ?? []) if (widget.name === CONTROL_WIDGET_NAME) widget.label = controlLabel();
}

export function getControlMode(): 'after' | 'before' {
  return controlMode;
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
 * ComfyUI's "control after generate": at each queued prompt, each controlled widget moves on as its control
 * widget says, so the next queue differs (or, on `fixed`, hits the cache): numbers by their step within
 * min/max, combos to the next, previous or a random choice. The widget's callback runs as if the user had
 * changed it (a Primitive then writes the new value into the widgets it feeds). A widget fed by a link is
 * left alone: the link's value is what runs. Returns the widgets changed.
 */
export function applyControlAfterGenerate(nodes: EditorNode[]): EditorWidget[] {
  const changed: EditorWidget[] = [];
  for (const node of nodes) {
    // Muted (2) and bypassed (4) nodes are not queued, so their seeds stay.
    if ((node.mode as number) === 2 || (node.mode as number) === 4) continue;
    for (const control of node.widgets ?? []) {
      const target = control.linkedWidget;
      if (!target || control.name !== CONTROL_WIDGET_NAME || (target as { disabled?: boolean }).disabled) continue;
      const mode = control.value as ControlMode;
      if (mode !== 'increment' && mode !== 'decrement' && mode !== 'randomize') continue;
      const current = target.value;
      const next = target.type === 'combo' ? nextChoice(target, mode, String(control.filterWidget?.value ?? '')) : nextNumber(target, mode);
      if (next === undefined || next === current) continue;
      target.value = next;
      (target.callback as ((value: unknown) => void) | undefined)?.call(target, target.value);
      changed.push(target);
    }
  }
  return changed;
}

function nextNumber(target: EditorWidget, mode: ControlMode): number {
  const options = target.options as { min?: number; max?: number; step?: number };
  const min = options.min ?? 0;
  const max = Math.min(options.max ?? MAX_RANDOM_SEED, MAX_RANDOM_SEED);
  // litegraph's number widgets hold ten times the step (see createWidget).
  const step = (options.step ?? 10) / 10;
  const current = Number(target.value);
  let next = current;
  if (mode === 'increment') next = current + step;
  else if (mode === 'decrement') next = current - step;
  else next = Math.floor(Math.random() * ((max - min) / step + 1)) * step + min;
  return Math.min(max, Math.max(min, next));
}

/** The next, previous or a random choice of a combo among those the filter lets through (wrapping round). */
function nextChoice(target: EditorWidget, mode: ControlMode, filter: string): unknown {
  const all = ((target.options as { values?: unknown[] }).values ?? []).map(String);
  let match = (value: string) => value.toLowerCase().includes(filter.trim().toLowerCase());
  const regex = /^\/(.*)\/([a-z]*)$/.exec(filter.trim());
  if (regex) {
    try {
      const pattern = new RegExp(regex[1]!, regex[2]);
      match = (value) => pattern.test(value);
    } catch {
      // Not a valid expression (yet, while it is typed): taken as plain text.
    }
  }
  const values = all.filter(match);
  if (!values.length) return undefined;
  if (mode === 'randomize') return values[Math.floor(Math.random() * values.length)];
  const index = values.indexOf(String(target.value));
  if (index === -1) return values[0];
  return values[(index + (mode === 'increment' ? 1 : -1) + values.length) % values.length];
}

function decimals(step: number): number {
  if (!Number.isFinite(step) || step <= 0) return 2;
  const text = String(step);
  const exp = /e-(\d+)$/.exec(text);
  if (exp) return Math.min(10, Number(exp[1]));
  const dot = text.indexOf('.');
  return dot === -1 ? 0 : Math.min(10, text.length - dot - 1);
}
