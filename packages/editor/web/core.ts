/**
 * The parts of @gategraph/core that run in the browser: the UI -> API converter and the workflow types.
 * They are plain TypeScript without Node dependencies; imported by path because the package's entry also
 * pulls in the executor and the pack loader, which need Node.
 */
export {
  uiToApi,
  widgetLayout,
  typesCompatible,
  VIRTUAL_NODE_TYPES,
  type UiToApiResult,
  type WidgetSlot,
} from '../../core/src/workflow/ui-to-api.ts';
export { normalizeUiWorkflow, uiWorkflowVersion, type UiWorkflow, type UiNode, type UiGraph } from '../../core/src/workflow/ui-format.ts';
export type { AnyNodeDefinition, InputSpec } from '../../core/src/node-definition.ts';
export type { ApiPrompt } from '../../core/src/workflow/api-format.ts';
export type { ObjectInfoEntry, ComfyInputSpec, ComfyInputOptions } from '../../core/src/object-info.ts';
