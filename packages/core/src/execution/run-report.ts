/**
 * How a run that stopped is reported: `execution_interrupted` for an interrupt (the user's, or any error
 * after the run was aborted), else `execution_error` with ComfyUI's fields (the node, its class, the message,
 * the traceback, its inputs and its sources' outputs, summarised).
 */
import { InterruptedError, NodeInputError } from '../errors.ts';
import { MalformedPromptError } from '../prompt-graph.ts';
import type { RunError, RunResult } from '../executor.ts';
import { summarizeList, tracebackOf } from './error-report.ts';
import { NodeFailure } from './node-run.ts';
import type { PromptRun } from './prompt-run.ts';

export function stoppedResult(run: PromptRun, error: unknown): RunResult {
  const promptId = run.promptId;
  const failure = error instanceof NodeFailure ? error : undefined;
  const nodeId = failure?.nodeId ?? (error instanceof MalformedPromptError ? error.nodeId : null);
  const nodeType = nodeId !== null ? (run.graph.node(nodeId)?.class_type ?? null) : null;
  const classType = typeof nodeType === 'string' ? nodeType : null;

  if (failure && (failure.cause instanceof InterruptedError || run.interrupted)) {
    run.logger.info(`Prompt ${promptId} interrupted${nodeId ? ` at node ${nodeId} (${classType})` : ''}`);
    run.emit({
      type: 'execution_interrupted',
      data: { prompt_id: promptId, node_id: nodeId, node_type: classType, executed: [...run.executed], timestamp: Date.now() },
    });
    return run.result('interrupted');
  }

  const cause = failure ? failure.cause : error;
  const report: RunError = {
    node_id: nodeId ?? '',
    node_type: classType ?? '',
    message: cause instanceof Error ? cause.message : String(cause),
    exception_type: cause instanceof Error ? cause.name : typeof cause,
    traceback: tracebackOf(cause),
    current_inputs: failure?.inputs ?? {},
  };
  if (cause instanceof NodeInputError || cause instanceof MalformedPromptError) {
    run.logger.error(`${report.node_type || 'Prompt'}${nodeId ? ` #${nodeId}` : ''}: ${report.message}`);
  } else {
    run.logger.error(`Error while executing ${report.node_type} #${report.node_id}:`, cause);
  }
  run.emit({
    type: 'execution_error',
    data: {
      prompt_id: promptId,
      node_id: report.node_id,
      node_type: report.node_type,
      executed: [...run.executed],
      exception_message: report.message,
      exception_type: report.exception_type,
      traceback: report.traceback,
      current_inputs: report.current_inputs,
      current_outputs: sourceOutputs(run, nodeId),
      timestamp: Date.now(),
    },
  });
  return run.result('error', report);
}

/** The summarised outputs of the failing node's direct sources that this run holds. */
function sourceOutputs(run: PromptRun, nodeId: string | null): Record<string, unknown> {
  const outputs: Record<string, unknown> = {};
  if (nodeId === null || !run.graph.has(nodeId)) return outputs;
  for (const source of run.graph.sources(nodeId)) {
    const entry = run.scheduler.value(source);
    if (entry) outputs[source] = entry.outputs.map((list) => summarizeList(list));
  }
  return outputs;
}
