// The CLI entry: thin on purpose. Everything it does lives in local/cli/.
import { main } from '../local/cli/main.ts';

process.exitCode = await main(process.argv.slice(2));
