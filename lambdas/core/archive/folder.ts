import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type ArchiveStore, assertArchiveKey, LOCAL_BUCKET } from './port.ts';

/** The archive in a folder: the local stand-in for S3. Writes are atomic (temporary file, then rename). */
export function createFolderArchive(folder: string): ArchiveStore {
  const root = resolve(folder);
  const pathOf = (key: string): string => join(root, ...assertArchiveKey(key).split('/'));
  let sequence = 0;

  return {
    location: root,
    async put(key, body) {
      const path = pathOf(key);
      await mkdir(dirname(path), { recursive: true });
      sequence += 1;
      const temporary = `${path}.${process.pid}.${sequence}.partial`;
      try {
        if (body instanceof Readable) await pipeline(body, createWriteStream(temporary));
        else await writeFile(temporary, body);
        await rename(temporary, path);
      } catch (error) {
        await rm(temporary, { force: true });
        throw error;
      }
    },
    async get(key) {
      try {
        return await readFile(pathOf(key));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
    },
    address: (key) => ({ bucket: LOCAL_BUCKET, key: assertArchiveKey(key) }),
    keyAt: (address) => (address.bucket === LOCAL_BUCKET ? address.key : undefined),
    async list(prefix) {
      const keys: string[] = [];
      const walk = async (dir: string): Promise<void> => {
        let entries: import('node:fs').Dirent[];
        try {
          entries = await readdir(dir, { withFileTypes: true });
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
          throw error;
        }
        for (const entry of entries) {
          const path = join(dir, entry.name);
          if (entry.isDirectory()) await walk(path);
          else if (!entry.name.endsWith('.partial')) keys.push(relative(root, path).split(sep).join('/'));
        }
      };
      await walk(root);
      return keys.filter((k) => k.startsWith(prefix)).sort();
    },
  };
}
