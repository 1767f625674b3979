// ONNX protobuf decode/encode. We use `onnx-buf` (onnx.proto3 of ONNX 1.20 compiled with protobuf-es v2) rather
// than `onnx-proto` (protobufjs 6, onnx 1.10.2, CommonJS):
// - int64 fields (dims, attribute ints, int64_data, ir_version) are `bigint`, so every value round-trips
//   exactly with no Long objects and no precision loss past 2^53;
// - protobuf-es keeps unknown fields and re-emits them, so fields newer than the schema survive a round trip;
// - `bytes` fields (raw_data) decode as views into the input buffer, not copies;
// - it is ESM with TypeScript types and tracks current ONNX releases.
import { clone, create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  AttributeProtoSchema,
  StringStringEntryProtoSchema,
  OperatorSetIdProtoSchema,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { OnnxGraphError } from './errors.ts';

export {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType,
  TensorProtoSchema,
  ValueInfoProtoSchema,
  create,
};
export type { AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto };

/** A protobuf message cannot exceed 2 GiB; models over that must keep their weights in external data. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

export function decodeModel(bytes: Uint8Array, where = 'model'): ModelProto {
  try {
    return fromBinary(ModelProtoSchema, bytes, { readUnknownFields: true });
  } catch (err) {
    throw new OnnxGraphError(
      `${where} is not a valid ONNX ModelProto (${(err as Error).message}). Is it an .onnx file, complete and not a Git LFS pointer?`,
      'decode_failed',
    );
  }
}

export function encodeModel(model: ModelProto, where = 'model'): Uint8Array {
  const bytes = toBinary(ModelProtoSchema, model, { writeUnknownFields: true });
  if (bytes.byteLength > PROTOBUF_LIMIT) {
    throw new OnnxGraphError(
      `${where} encodes to ${bytes.byteLength} bytes, over protobuf's 2 GiB limit: store its large initializers as external data (saveModel with externalize).`,
      'too_large',
    );
  }
  return bytes;
}

/** Deep copy: derivations work on a clone so the input model is never modified. Byte fields stay shared views. */
export function cloneModel(model: ModelProto): ModelProto {
  return clone(ModelProtoSchema, model);
}

export const DTYPE_NAMES: Record<number, string> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string', 9: 'bool',
  10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 16: 'bfloat16',
};

export const DTYPE_BYTES: Record<number, number> = {
  1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2,
};

export function tensorElementCount(t: TensorProto): number {
  return t.dims.reduce((n, d) => n * Number(d), 1);
}

/** Bytes of an initializer's data (embedded or external), from its dims and type. */
export function tensorByteSize(t: TensorProto): number {
  return tensorElementCount(t) * (DTYPE_BYTES[t.dataType] ?? 0);
}

export function attr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

export function attrInt(node: NodeProto, name: string, fallback: number): number {
  const a = attr(node, name);
  return a ? Number(a.i) : fallback;
}

export function attrInts(node: NodeProto, name: string): number[] | undefined {
  const a = attr(node, name);
  return a ? a.ints.map(Number) : undefined;
}

export function attrFloat(node: NodeProto, name: string, fallback: number): number {
  const a = attr(node, name);
  return a ? a.f : fallback;
}

export function attrString(node: NodeProto, name: string): string | undefined {
  const a = attr(node, name);
  return a ? new TextDecoder().decode(a.s) : undefined;
}

/** A graph input/output declaration with an element type and a shape of fixed sizes or symbolic names. */
export function makeValueInfo(name: string, elemType: number, dims?: Array<number | string>): ValueInfoProto {
  const tensor = create(TypeProto_TensorSchema, {
    elemType,
    ...(dims
      ? {
          shape: create(TensorShapeProtoSchema, {
            dim: dims.map((d) =>
              create(TensorShapeProto_DimensionSchema, {
                value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d },
              }),
            ),
          }),
        }
      : {}),
  });
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensor } }) });
}

/** Element type and dims (number, symbolic name, or undefined when unknown) of a value info. */
export function valueInfoType(vi: ValueInfoProto): { elemType: number; dims?: Array<number | string | undefined> } {
  const t = vi.type?.value;
  if (!t || t.case !== 'tensorType') return { elemType: 0 };
  const shape = t.value.shape;
  return {
    elemType: t.value.elemType,
    ...(shape
      ? {
          dims: shape.dim.map((d) =>
            d.value.case === 'dimValue' ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : undefined,
          ),
        }
      : {}),
  };
}

export function newTensor(init: MessageInitShape<typeof TensorProtoSchema>): TensorProto {
  return create(TensorProtoSchema, init);
}

export function newGraph(init: MessageInitShape<typeof GraphProtoSchema>): GraphProto {
  return create(GraphProtoSchema, init);
}

export function newNode(init: MessageInitShape<typeof NodeProtoSchema>): NodeProto {
  return create(NodeProtoSchema, init);
}

/** A model around `graph`, importing the default domain at `opset` and any other domains given. */
export function newModel(graph: GraphProto, opset = 14, otherDomains: Array<{ domain: string; version: number }> = []): ModelProto {
  return create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: 'gategraph',
    graph,
    opsetImport: [{ domain: '', version: opset }, ...otherDomains].map((o) => create(OperatorSetIdProtoSchema, { domain: o.domain, version: BigInt(o.version) })),
  });
}
