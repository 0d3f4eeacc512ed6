// Schema validation of one parsed file (ajv, allErrors), with ajv's errors rewritten into problems
// that say, in words, what was expected and what was found, at the right line.
import { isIP } from 'node:net';
import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { ConfigProblem } from './problems.js';
import type { JsonSchema } from './schema-parts.js';
import { clusterSchema, moduleKindProperties, moduleKinds, moduleSchema } from './schema.js';
import type { DataPath, Source } from './source.js';
import { didYouMean } from './suggest.js';

const hostNamePattern =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** The checks behind the `check` keyword. */
const checks: Record<string, (s: string) => boolean> = {
  ip: (s) => isIP(s) !== 0,
  'ip-or-none': (s) => s === 'none' || isIP(s) !== 0,
  host: (s) => isIP(s) !== 0 || hostNamePattern.test(s),
  'http-url': (s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
    } catch {
      return false;
    }
  },
};

function makeAjv(): Ajv {
  // Union types: `vip` is one address or a list of them; a mirror dirs item is a path or { path, exclude }.
  const ajv = new Ajv({ allErrors: true, verbose: true, discriminator: true, strict: true, allowUnionTypes: true });
  ajv.addKeyword({ keyword: 'expect', schemaType: 'string' });
  ajv.addKeyword({ keyword: 'unit', schemaType: 'string' });
  ajv.addKeyword({
    keyword: 'check',
    type: 'string',
    schemaType: 'string',
    errors: false,
    validate: (name: string, data: string) => {
      const check = checks[name];
      if (!check) throw new Error(`unknown check ${name} in the config schema`);
      return check(data);
    },
  });
  return ajv;
}

let compiled: { cluster: ValidateFunction; module: ValidateFunction } | undefined;

/** Compiled once, on first use (not at import: importers that never validate pay nothing). */
function validators(): { cluster: ValidateFunction; module: ValidateFunction } {
  if (!compiled) {
    const ajv = makeAjv();
    compiled = { cluster: ajv.compile(clusterSchema), module: ajv.compile(moduleSchema()) };
  }
  return compiled;
}

export function validateCluster(source: Source): ConfigProblem[] {
  return validateWith(validators().cluster, source);
}

export function validateModule(source: Source): ConfigProblem[] {
  return validateWith(validators().module, source);
}

function validateWith(validate: ValidateFunction, source: Source): ConfigProblem[] {
  if (source.data === undefined || source.data === null) {
    return [source.problem([], 'the file is empty; expected a mapping of keys')];
  }
  if (validate(source.data)) return [];
  const errors = validate.errors ?? [];
  // A value of the wrong type makes every other complaint about it noise.
  const typeFailed = new Set(errors.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
  const seen = new Set<string>();
  const problems: ConfigProblem[] = [];
  for (const e of errors) {
    if (e.keyword !== 'type' && typeFailed.has(e.instancePath)) continue;
    const p = toProblem(e, source);
    if (!p) continue;
    const id = `${p.line}:${p.column}:${p.key}:${p.message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    problems.push(p);
  }
  return problems;
}

/** JSON Pointer -> data path, with list indexes as numbers (for `addresses[1]`). */
function toDataPath(pointer: string, data: unknown): (string | number)[] {
  if (pointer === '') return [];
  const out: (string | number)[] = [];
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      const i = Number(seg);
      out.push(i);
      cur = cur[i];
    } else {
      out.push(seg);
      cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[seg] : undefined;
    }
  }
  return out;
}

function toProblem(e: ErrorObject, source: Source): ConfigProblem | undefined {
  const path = toDataPath(e.instancePath, source.data);
  const schema: JsonSchema = e.parentSchema ?? {};
  const params = e.params as Record<string, unknown>;
  const at = (p: DataPath, message: string, anchor: 'key' | 'value' = 'value'): ConfigProblem =>
    source.problem(p, message, anchor);

  switch (e.keyword) {
    case 'required': {
      const missing = String(params.missingProperty);
      const sub = propertySchema(schema, missing);
      return at([...path, missing], `missing required key${sub ? `: expected ${expected(sub)}` : ''}`);
    }
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      // A key of another module kind (vip in a light module): say whose key it is.
      const kind = propertySchema(schema, 'kind')?.const;
      const owners = typeof kind === 'string' && path.length === 0 ? moduleKinds.filter((k) => k !== kind && key in moduleKindProperties[k]) : [];
      if (owners.length > 0) {
        return at([...path, key], `"${key}" is a key of ${owners.join(' and ')} modules; this module is kind: ${kind}`, 'key');
      }
      const allowed = Object.keys(propertySchema(schema) ?? {});
      const guess = didYouMean(key, allowed);
      const hint = guess ? `; did you mean "${guess}"?` : `; allowed keys: ${allowed.join(', ')}`;
      return at([...path, key], `unknown key "${key}"${hint}`, 'key');
    }
    case 'propertyNames':
      return undefined; // reported by the inner error, which carries the offending name
    case 'discriminator': {
      if (params.error !== 'mapping') return undefined; // missing or non-string tag: `required`/`type` say it
      const tag = String(params.tag);
      const options = discriminatorOptions(schema, tag);
      const value = String(params.tagValue);
      const guess = didYouMean(value, options);
      return at(
        [...path, tag],
        `expected one of ${options.join(', ')}, got ${show(params.tagValue)}${guess ? `; did you mean "${guess}"?` : ''}`,
      );
    }
    case 'minItems':
    case 'maxItems': {
      const n = Number(params.limit);
      const got = Array.isArray(e.data) ? e.data.length : 0;
      const bound = e.keyword === 'minItems' ? 'at least' : 'at most';
      return at(path, `expected ${expected(schema)} with ${bound} ${n} item${n === 1 ? '' : 's'}, got ${got}`);
    }
    case 'minProperties':
    case 'maxProperties': {
      const n = Number(params.limit);
      const bound = e.keyword === 'minProperties' ? 'at least' : 'at most';
      return at(path, `expected ${expected(schema)} with ${bound} ${n} entr${n === 1 ? 'y' : 'ies'}`);
    }
    case 'uniqueItems': {
      const later = Number(params.i);
      const earlier = Number(params.j);
      const item = Array.isArray(e.data) ? e.data[later] : undefined;
      const first = Math.min(later, earlier);
      const second = Math.max(later, earlier);
      return at([...path, second], `${show(item)} is listed twice (also item ${first}); expected each item once`);
    }
    default: {
      if (e.propertyName !== undefined) {
        // An invalid key name (propertyNames): point at the key itself.
        const name = e.propertyName;
        return at([...path, name], `invalid name ${show(name)}: expected ${expected(schema)}`, 'key');
      }
      if (['type', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength', 'pattern', 'enum', 'const', 'check'].includes(e.keyword)) {
        let message = `expected ${expected(schema)}, got ${show(e.data)}`;
        if (e.keyword === 'enum' && typeof e.data === 'string') {
          const guess = didYouMean(e.data, (schema.enum as unknown[]).map(String));
          if (guess) message += `; did you mean "${guess}"?`;
        }
        return at(path, message);
      }
      return at(path, e.message ?? `invalid value (${e.keyword})`);
    }
  }
}

function propertySchema(schema: JsonSchema): Record<string, JsonSchema> | undefined;
function propertySchema(schema: JsonSchema, key: string): JsonSchema | undefined;
function propertySchema(schema: JsonSchema, key?: string): JsonSchema | Record<string, JsonSchema> | undefined {
  const props = schema.properties as Record<string, JsonSchema> | undefined;
  if (key === undefined) return props;
  return props?.[key];
}

function discriminatorOptions(schema: JsonSchema, tag: string): string[] {
  const branches = (schema.oneOf as JsonSchema[] | undefined) ?? [];
  return branches.map((b) => String(propertySchema(b, tag)?.const));
}

/** What a schema accepts, in words: "an integer from 10 to 60000 (milliseconds)". */
export function expected(schema: JsonSchema): string {
  if (typeof schema.expect === 'string') return schema.expect;
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.map(String).join(', ')}`;
  if (schema.const !== undefined) return show(schema.const);
  const unit = typeof schema.unit === 'string' ? ` (${schema.unit})` : '';
  switch (schema.type) {
    case 'integer':
    case 'number': {
      const noun = schema.type === 'integer' ? 'an integer' : 'a number';
      const min = schema.minimum as number | undefined;
      const max = schema.maximum as number | undefined;
      const above = schema.exclusiveMinimum as number | undefined;
      let range = '';
      if (min !== undefined && max !== undefined) range = ` from ${min} to ${max}`;
      else if (min !== undefined) range = ` >= ${min}`;
      else if (above !== undefined) range = ` > ${above}`;
      else if (max !== undefined) range = ` <= ${max}`;
      return `${noun}${range}${unit}`;
    }
    case 'string':
      return typeof schema.minLength === 'number' && schema.minLength > 1
        ? `a string of at least ${schema.minLength} characters`
        : 'a string';
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    case 'object':
      return 'a mapping of keys';
    default:
      return 'a valid value';
  }
}

/** A found value, as the user would recognise it. */
export function show(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}
