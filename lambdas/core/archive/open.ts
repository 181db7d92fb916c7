import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S3Client } from '@aws-sdk/client-s3';
import { InputError } from '../errors.ts';
import { createFolderArchive } from './folder.ts';
import type { ArchiveStore } from './port.ts';
import { createS3Archive } from './s3.ts';

let s3: S3Client | undefined;

const S3_URL = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/;

/**
 * Opens the archive an `archive.url` names: `s3://bucket/prefix` (S3), a `file://` URL or a folder path.
 * The S3 client is created once per process (per Lambda container); its region comes from the environment.
 */
export function openArchive(url: string, cwd = process.cwd()): ArchiveStore {
  const bucket = S3_URL.exec(url);
  if (bucket !== null) {
    s3 ??= new S3Client({});
    return createS3Archive({ client: s3, bucket: bucket[1] ?? '', prefix: bucket[2] ?? '' });
  }
  if (url.startsWith('file://')) return createFolderArchive(fileURLToPath(url));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new InputError(
      `archive.url ${JSON.stringify(url)}: use s3://bucket/prefix, a file:// URL or a folder path`,
    );
  }
  return createFolderArchive(resolve(cwd, url));
}
