/**
 * A JSON body parser like `express.json` (same limits, same error types for the error handler) that keeps
 * number literal kinds (`1` vs `1.0`, core's `parseJsonKeepingNumberKinds`), for `POST /prompt`: ComfyUI, in
 * Python, hands a VALIDATE_INPUTS hook an int or a float as the client wrote it.
 */
import type { IncomingMessage } from 'node:http';
import express, { type RequestHandler } from 'express';
import { parseJsonKeepingNumberKinds } from '@gategraph/core';

export interface JsonBodyOptions {
  limit: number;
  type: (req: IncomingMessage) => boolean;
  verify: (req: IncomingMessage, res: unknown, buffer: Buffer) => void;
}

export function jsonKeepingNumberKinds(options: JsonBodyOptions): RequestHandler {
  const text = express.text({ limit: options.limit, type: options.type, verify: options.verify as never, defaultCharset: 'utf-8' });
  return (req, res, next) => {
    text(req, res, (error?: unknown) => {
      if (error) return next(error);
      const body: unknown = req.body;
      if (typeof body !== 'string') return next();
      if (body.trim() === '') {
        req.body = undefined;
        return next();
      }
      try {
        req.body = parseJsonKeepingNumberKinds(body);
        next();
      } catch (parseError) {
        next(Object.assign(new Error((parseError as Error).message), { type: 'entity.parse.failed', status: 400 }));
      }
    });
  };
}
