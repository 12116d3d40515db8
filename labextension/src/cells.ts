// A record's settings as a `%%cometimg` cell (DESIGN.md §1 "The magic"), and its edit cell.
// The magic splits its line the POSIX way (shlex), so values are quoted for a POSIX shell.
import { RecordSummary } from './api';

// Request fields with an option of their own; the rest go through --param KEY=VALUE.
const OPTIONS: Record<string, string> = {
  size: '-s',
  quality: '-q',
  n: '-n',
  output_format: '-f',
  output_compression: '--compression',
  background: '--background',
  style: '--style',
  response_format: '--response-format',
  moderation: '--moderation',
  input_fidelity: '--fidelity'
};
// Fields a cell never repeats: the prompt is the body, the model is -m, streaming is how the
// earlier cell chose to show progress, and an edit's inputs are named again by --image.
const SKIPPED = new Set([
  'prompt',
  'model',
  'stream',
  'partial_images',
  'image',
  'images',
  'mask',
  'input_fidelity'
]);

/** `value` quoted for shlex.split: bare when safe, else in single quotes. */
export function shellQuote(value: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) {
    return value;
  }
  return `'${value.replace(/'/g, `'"'"'`)}'`;
}

/** The body of a cell: `{` and `}` doubled, because the magic fills `{name}` from the kernel. */
export function escapeBraces(prompt: string): string {
  return prompt.replace(/[{}]/g, ch => ch + ch);
}

function paramValue(value: unknown): string {
  // --param parses its value as JSON when it can: a string that would parse stays quoted JSON.
  if (typeof value === 'string') {
    try {
      JSON.parse(value);
      return JSON.stringify(value);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value);
}

function settingArgs(params: Record<string, unknown>): string[] {
  const args: string[] = [];
  for (const [field, value] of Object.entries(params)) {
    if (SKIPPED.has(field) || value === null || value === undefined) {
      continue;
    }
    if (field === 'n' && value === 1) {
      continue;
    }
    const option = OPTIONS[field];
    if (option) {
      args.push(option, shellQuote(String(value)));
    } else {
      args.push('--param', shellQuote(`${field}=${paramValue(value)}`));
    }
  }
  return args;
}

function tagArgs(tags: string[]): string[] {
  return tags.flatMap(tag => ['--tag', shellQuote(tag)]);
}

/** A `%%cometimg` cell that asks again for what `rec` asked: model, settings, tags, prompt. */
export function generateCell(rec: RecordSummary): string {
  const args = ['-m', shellQuote(rec.model), ...settingArgs(rec.params ?? {}), ...tagArgs(rec.tags)];
  return `%%cometimg ${args.join(' ')}\n${escapeBraces(rec.prompt)}`;
}

/** A cell that edits `rec`'s first image: `--image @ID`, its model and size, its prompt. */
export function editCell(rec: RecordSummary): string {
  const args = ['-m', shellQuote(rec.model), '--image', `@${rec.id}`];
  const size = rec.params?.size;
  if (typeof size === 'string' && size) {
    args.push('-s', shellQuote(size));
  }
  args.push(...tagArgs(rec.tags));
  return `%%cometimg ${args.join(' ')}\n${escapeBraces(rec.prompt)}`;
}
