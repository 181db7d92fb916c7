import type { Readable } from 'node:stream';

/**
 * The archive store: reports and archived legacy data, addressed by `/`-separated keys.
 * Production adapter: S3. Local adapter: a folder.
 */
export interface ArchiveStore {
  /** Where the store is, for messages: `s3://bucket/prefix` or a folder path. */
  readonly location: string;
  /** Writes an object; a stream is written without holding it in memory. Replaces an existing object. */
  put(key: string, body: string | Buffer | Readable, options?: { contentType?: string }): Promise<void>;
  /** Reads a whole object; undefined when there is none. */
  get(key: string): Promise<Buffer | undefined>;
  /** Keys under a prefix, in lexical order. */
  list(prefix: string): Promise<string[]>;
}

const KEY = /^[A-Za-z0-9!_.*'()-]+(?:\/[A-Za-z0-9!_.*'()-]+)*$/;

/** Keys are relative, `/`-separated, with S3's safe characters only, and never climb out (`..`). */
export function assertArchiveKey(key: string): string {
  if (!KEY.test(key) || key.split('/').some((part) => part === '.' || part === '..')) {
    throw new TypeError(
      `unsafe archive key ${JSON.stringify(key)}: use /-separated names of A-Z a-z 0-9 ! _ . * ' ( ) -`,
    );
  }
  return key;
}
