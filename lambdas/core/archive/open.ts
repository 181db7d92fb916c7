import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../errors.ts';
import { createFolderArchive } from './folder.ts';
import type { ArchiveStore } from './port.ts';

/**
 * Opens the archive an `archive.url` names: a folder path or `file://` URL. (`s3://bucket/prefix` is served
 * by the S3 adapter, which the AWS stack wires in.)
 */
export function openArchive(url: string, cwd = process.cwd()): ArchiveStore {
  if (url.startsWith('file://')) return createFolderArchive(fileURLToPath(url));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new InputError(
      `archive.url ${JSON.stringify(url)}: this runner stores archives in a folder; use a path or file:// URL`,
    );
  }
  return createFolderArchive(resolve(cwd, url));
}
