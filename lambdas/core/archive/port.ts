import type { Readable } from 'node:stream';

/**
 * The archive store: reports and archived legacy data, addressed by `/`-separated keys.
 * Production adapter: S3. Local adapter: a folder.
 */
export interface ArchiveStore {
  /** Where the store is, for messages: `s3://bucket/prefix` or a folder path. */
  readonly location: string;
  /** Writes an object; a stream is written without holding it in memory. Replaces an existing object. */
  put(
    key: string,
    body: string | Buffer | Readable,
    options?: {
      contentType?: string;
      /**
       * The object may not be changed or deleted before this time, by anyone (S3 Object Lock in compliance mode: not
       * even the account's root user can shorten it). A folder archive cannot enforce it and ignores it.
       */
      retainUntil?: Date;
    },
  ): Promise<void>;
  /** Reads a whole object; undefined when there is none. */
  get(key: string): Promise<Buffer | undefined>;
  /** Keys under a prefix, in lexical order. */
  list(prefix: string): Promise<string[]>;
  /**
   * Where an object is, as Step Functions names it (a Distributed Map's ItemReader and ResultWriter): its bucket
   * and full key. A folder archive answers with the bucket name {@link LOCAL_BUCKET}.
   */
  address(key: string): ArchiveAddress;
  /** The archive key at an address; undefined when the address is outside this store. */
  keyAt(address: ArchiveAddress): string | undefined;
}

/** An object's place as S3 (and Step Functions) name it. */
export interface ArchiveAddress {
  readonly bucket: string;
  readonly key: string;
}

/** The bucket name a folder archive gives its objects' addresses (never a real bucket: it has capitals). */
export const LOCAL_BUCKET = 'LocalArchive';

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
