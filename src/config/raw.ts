// Readers of the plain data of a configuration file that trust nothing: the checks across keys and
// files run on data the schema may have refused, so each value is taken only if it has the shape
// asked for (else undefined).

export type Obj = Record<string, unknown>;

export const obj = (v: unknown): Obj | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined;
export const list = (v: unknown): unknown[] | undefined => (Array.isArray(v) ? v : undefined);
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
export const int = (v: unknown): number | undefined => (Number.isInteger(v) ? (v as number) : undefined);
