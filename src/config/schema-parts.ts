// Pieces of the JSON Schemas that the cluster, module, farm and mirror schemas share. A file of its
// own: schema.ts imports the farm and mirror keys (farm.ts, mirror.ts) as values, so those cannot
// import values back from it.

export type JsonSchema = Record<string, unknown>;

/** A DNS label: safe in file names, log fields, nft set names and URLs. */
const namePattern = '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$';
export function nameSchema(what: string): JsonSchema {
  return {
    type: 'string',
    pattern: namePattern,
    maxLength: 63,
    expect: `a ${what} of lowercase letters, digits and '-' (at most 63)`,
  };
}

export function intSchema(minimum: number, maximum?: number, unit?: string): JsonSchema {
  const s: JsonSchema = { type: 'integer', minimum };
  if (maximum !== undefined) s.maximum = maximum;
  if (unit !== undefined) s.unit = unit;
  return s;
}
export const ms = (minimum: number, maximum = 86_400_000): JsonSchema => intSchema(minimum, maximum, 'milliseconds');
export const port: JsonSchema = { type: 'integer', minimum: 1, maximum: 65535, expect: 'a port number from 1 to 65535' };
/** A Linux interface name (IFNAMSIZ: at most 15 bytes). */
export const interfaceName: JsonSchema = {
  type: 'string',
  pattern: '^[^/\\s:]{1,15}$',
  expect: "a network interface name (1 to 15 characters, no '/', ':' or space)",
};
