import { spawn } from 'node:child_process';
import { CliError, EXIT } from './errors.js';

/**
 * The launcher's only contact with yad (GTK dialogs from the shell, light enough for a Pi
 * Zero). Everything it shows goes in yad's arguments, which other local users can read in
 * `ps`: so no secret ever does. The password field starts empty and its value comes back on
 * yad's stdout, a pipe only this process reads.
 */

// Control characters nobody types in a form and URL.href never contains: safe separators.
const SEP = '\x1e';
const ITEM_SEP = '\x1f';

/** yad's exit code when the window was closed or Escape pressed. */
export const CLOSED = 252;

export const YAD_INSTALL_HINT = 'yad is not installed: sudo apt-get install yad';

export interface Field {
  label: string;
  /** H: hidden text (passwords); CBE: editable combo box (`items`, the first one shown). */
  type?: 'H' | 'CBE';
  value?: string;
  items?: readonly string[];
}

export interface Button {
  /** `_` marks the Alt mnemonic. */
  label: string;
  /** yad's exit code for it; even codes print the form's values, odd ones do not. */
  code: number;
}

export interface FormSpec {
  title: string;
  text?: string;
  image?: string;
  fields: readonly Field[];
  buttons: readonly Button[];
}

export interface FormResult {
  code: number;
  values: string[];
}

/** yad reads `--text` as Pango markup and expands backslash escapes: show it literally. */
export function escapeText(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function common(title: string, text: string | undefined, image: string | undefined): string[] {
  return [`--title=${title}`, '--window-icon=hackstream', '--center', ...(image ? [`--image=${image}`] : []), ...(text !== undefined ? [`--text=${escapeText(text)}`] : [])];
}

const buttonArgs = (buttons: readonly Button[]): string[] => buttons.map((b) => `--button=${b.label}:${b.code}`);

export function formArgs(f: FormSpec): string[] {
  const values = f.fields.map((x) => (x.items ? x.items.join(ITEM_SEP) : (x.value ?? '')));
  return [
    '--form',
    ...common(f.title, f.text, f.image),
    `--separator=${SEP}`,
    `--item-separator=${ITEM_SEP}`,
    ...f.fields.map((x) => `--field=${x.label.replace(/:/g, ' ')}${x.type ? `:${x.type}` : ''}`),
    ...buttonArgs(f.buttons),
    // After `--` a value starting with a dash is a value, not an option.
    '--',
    ...values,
  ];
}

/** yad prints every field followed by the separator, then a newline. */
export function parseForm(stdout: string, count: number): string[] {
  const parts = stdout.replace(/\n$/, '').split(SEP);
  return Array.from({ length: count }, (_, i) => parts[i] ?? '');
}

export interface ListSpec {
  title: string;
  text?: string;
  columns: readonly string[];
  /** Cells row by row; shown as text (markup escaped). */
  rows: readonly (readonly string[])[];
  buttons: readonly Button[];
}

export interface ListResult {
  code: number;
  /** The selected row's first cell (yad selects the first row by default); undefined when none. */
  key: string | undefined;
}

/** yad renders list cells as Pango markup: escape it (no backslash expansion there). */
const cellText = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function listArgs(l: ListSpec): string[] {
  return [
    '--list',
    ...common(l.title, l.text, undefined),
    '--width=720',
    '--height=320',
    `--separator=${SEP}`,
    '--print-column=1',
    ...l.columns.map((c) => `--column=${c.replace(/:/g, ' ')}`),
    ...buttonArgs(l.buttons),
    '--',
    ...l.rows.flatMap((r) => r.map(cellText)),
  ];
}

export function messageArgs(kind: 'error' | 'info', title: string, text: string): string[] {
  return [...common(title, text, kind === 'error' ? 'dialog-error' : 'dialog-information'), '--button=_OK:0'];
}

export function questionArgs(title: string, text: string, yes: string, no: string): string[] {
  return [...common(title, text, 'dialog-question'), `--button=${no}:1`, `--button=${yes}:0`];
}

export function progressArgs(title: string, text: string): string[] {
  return ['--progress', '--pulsate', ...common(title, text, undefined), '--button=_Hide:1'];
}

interface Run {
  code: Promise<number>;
  stdout: () => string;
  kill: () => void;
}

function yad(args: string[], stdin: 'ignore' | 'pipe' = 'ignore'): Run {
  const child = spawn(process.env.HACKSTREAM_YAD ?? 'yad', args, { stdio: [stdin, 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  // GTK warnings are not the user's business; only a display that cannot be opened is.
  child.stderr?.on('data', (c: Buffer) => (err = (err + c.toString('utf8')).slice(-4096)));
  const code = new Promise<number>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? new CliError(EXIT.FAILURE, YAD_INSTALL_HINT) : e));
    child.on('close', (c, signal) => {
      if (c !== 0 && /cannot open display/i.test(err)) reject(new CliError(EXIT.FAILURE, `cannot open the display${process.env.DISPLAY ? ` ${process.env.DISPLAY}` : ' (DISPLAY is not set)'}: hackstream gui needs a desktop session`));
      else resolve(c ?? (signal ? CLOSED : 1));
    });
  });
  return { code, stdout: () => out, kill: () => void child.kill('SIGTERM') };
}

/** What the launcher needs from a dialog toolkit. */
export interface Dialogs {
  form(spec: FormSpec): Promise<FormResult>;
  message(kind: 'error' | 'info', title: string, text: string): Promise<void>;
  question(title: string, text: string, yes: string, no: string): Promise<boolean>;
  /** A list to pick a row from (its first cell comes back). */
  list(spec: ListSpec): Promise<ListResult>;
  /** A pulsating bar until `close()`; `hidden` resolves when the user dismissed it. */
  progress(title: string, text: string): { close: () => void; hidden: Promise<void> };
}

export const yadDialogs: Dialogs = {
  async form(spec) {
    const r = yad(formArgs(spec));
    const code = await r.code;
    return { code, values: parseForm(r.stdout(), spec.fields.length) };
  },
  async list(spec) {
    const r = yad(listArgs(spec));
    const code = await r.code;
    const key = r.stdout().split('\n')[0]?.split(SEP)[0];
    return { code, key: key ? key : undefined };
  },
  async message(kind, title, text) {
    // Shown beside other windows too (a launch failing later): never throws, says it on stderr at worst.
    await yad(messageArgs(kind, title, text)).code.catch((err: unknown) => {
      process.stderr.write(`hackstream: ${text} (${err instanceof Error ? err.message : String(err)})\n`);
    });
  },
  async question(title, text, yes, no) {
    return (await yad(questionArgs(title, text, yes, no)).code) === 0;
  },
  progress(title, text) {
    // Pulsating needs no input; the pipe stays open so yad does not take end-of-input as done.
    const r = yad(progressArgs(title, text), 'pipe');
    return { close: r.kill, hidden: r.code.then(() => undefined, () => undefined) };
  },
};
