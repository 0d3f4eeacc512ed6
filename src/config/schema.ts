// JSON Schemas of the configuration files (snake_case, as users write them). Two keywords of ours
// make the messages readable: `expect` says in words what a value must be, `unit` names the unit of
// a number; `check` runs a named check that JSON Schema cannot express (see validate.ts).
//
// Extending: the module schema is built per kind (light, farm, mirror) from the common keys plus
// `moduleKindProperties[kind]`: the farm and mirror keys (vip, buckets, replicated dirs...) are
// defined in farm.ts and mirror.ts of this folder, beside their checks, without touching the rest.
import { farmProperties, farmRequired } from './farm.js';
import { mirrorProperties, mirrorRequired } from './mirror.js';
import { notifySchema } from './notify.js';
import { intSchema, interfaceName, ms, nameSchema, port, type JsonSchema } from './schema-parts.js';
import type { ModuleKind } from './types.js';


export const moduleKinds: readonly ModuleKind[] = ['light', 'farm', 'mirror'];
export const checkerTypes = ['tcp', 'http', 'ping', 'interface', 'script', 'module', 'redis'] as const;
export const failureActions = ['restart', 'stop', 'wait'] as const;
export const moduleStates = ['STOP', 'WAIT', 'UP', 'ALONE', 'PRIM', 'SECOND'] as const;

const relativePath = (what: string): JsonSchema => ({ type: 'string', minLength: 1, expect: what });

function object(properties: Record<string, JsonSchema>, required: string[] = []): JsonSchema {
  const s: JsonSchema = { type: 'object', additionalProperties: false, properties };
  if (required.length > 0) s.required = required;
  return s;
}

// ---------------------------------------------------------------- cluster.yaml

const nodeSchema = object(
  {
    addresses: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', check: 'ip', expect: 'an IP address (IPv4 or IPv6)' },
      expect: 'a list of IP addresses, one per LAN',
    },
    weight: { type: 'number', exclusiveMinimum: 0, maximum: 1000, expect: 'a number above 0 and at most 1000' },
  },
  ['addresses'],
);

export const clusterSchema: JsonSchema = object(
  {
    name: nameSchema('cluster name'),
    key: { type: 'string', minLength: 32, expect: 'a secret of at least 32 characters' },
    key_file: relativePath('a file path (relative to the config directory)'),
    heartbeat: object({ port, interval_ms: ms(10, 60_000), timeout_ms: ms(20, 600_000) }),
    lans: {
      type: 'array',
      minItems: 1,
      maxItems: 8,
      uniqueItems: true,
      items: nameSchema('LAN name'),
      expect: 'a list of LAN names',
    },
    nodes: {
      type: 'object',
      minProperties: 1,
      maxProperties: 64,
      propertyNames: nameSchema('node name'),
      additionalProperties: nodeSchema,
      expect: 'a mapping of node names to nodes (n1: { addresses: [...] })',
    },
    api: object({
      host: { type: 'string', check: 'ip', expect: 'an IP address to listen on' },
      port,
      socket: { type: 'string', pattern: '^/', expect: 'an absolute path for the local API socket' },
      tokens: {
        type: 'array',
        items: { type: 'string', minLength: 16, expect: 'a token of at least 16 characters' },
        expect: 'a list of tokens',
      },
      users: {
        type: 'array',
        items: object(
          {
            name: { type: 'string', minLength: 1, expect: 'a user name' },
            password: { type: 'string', minLength: 8, expect: 'a password of at least 8 characters' },
            role: { type: 'string', enum: ['admin', 'operator', 'viewer'] },
          },
          ['name', 'password'],
        ),
        expect: 'a list of users (name, password, role)',
      },
      allowed_hosts: {
        type: 'array',
        maxItems: 64,
        items: { type: 'string', pattern: '^[A-Za-z0-9.:_-]{1,253}$', expect: 'a host name or IP address (no port)' },
        expect: 'a list of host names or addresses clients use to reach the API',
      },
      metrics_auth: { type: 'boolean' },
      tls: object(
        {
          cert: relativePath('a PEM certificate file path (relative to the config directory)'),
          key: relativePath('a PEM key file path (relative to the config directory)'),
        },
        ['cert', 'key'],
      ),
    }),
    state_dir: { type: 'string', pattern: '^/', expect: 'an absolute directory path' },
    notify: notifySchema,
  },
  ['name', 'nodes'],
);

// ---------------------------------------------------------------- modules/*.yaml

const checkerCommon: Record<string, JsonSchema> = {
  name: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$', maxLength: 63, expect: "a checker name of lowercase letters, digits, '_' and '-'" },
  interval_ms: ms(10),
  timeout_ms: ms(1),
  rise: intSchema(1, 100),
  fall: intSchema(1, 100),
  on_failure: { type: 'string', enum: [...failureActions] },
};

const host: JsonSchema = { type: 'string', check: 'host', expect: 'an IP address or host name' };

const checkerSpecific: Record<(typeof checkerTypes)[number], [Record<string, JsonSchema>, string[]]> = {
  tcp: [{ host, port }, ['host', 'port']],
  http: [
    {
      url: { type: 'string', check: 'http-url', expect: 'an http:// or https:// URL' },
      expect_status: {
        type: 'array',
        minItems: 1,
        uniqueItems: true,
        items: intSchema(100, 599),
        expect: 'a list of HTTP status codes',
      },
    },
    ['url'],
  ],
  ping: [{ host }, ['host']],
  interface: [
    {
      interface: interfaceName,
    },
    ['interface'],
  ],
  script: [{ path: relativePath('a script path (relative to the module file)') }, ['path']],
  module: [
    {
      module: nameSchema('module name'),
      node: { ...nameSchema('node name'), expect: "'local', 'any' or a node name" },
      states: {
        type: 'array',
        minItems: 1,
        uniqueItems: true,
        items: { type: 'string', enum: [...moduleStates] },
        expect: `a list of module states (${moduleStates.join(', ')})`,
      },
    },
    ['module'],
  ],
  redis: [
    {
      host,
      port,
      password: { type: 'string', minLength: 1, expect: "the server's password (requirepass)" },
      db: { type: 'integer', minimum: 0, maximum: 65535, expect: 'a database number (SELECT), 0 or more' },
    },
    [],
  ],
};

/** The checker schema, with keys that one kind of module adds to every checker (mirror: scope). */
function checkerSchemaWith(extra: Record<string, JsonSchema>): JsonSchema {
  return {
    type: 'object',
    required: ['type'],
    properties: { type: { type: 'string' } },
    discriminator: { propertyName: 'type' },
    oneOf: checkerTypes.map((t) => {
      const [specific, required] = checkerSpecific[t];
      return object({ type: { const: t }, ...checkerCommon, ...extra, ...specific }, ['type', ...required]);
    }),
  };
}
const checkerSchema = checkerSchemaWith({});

const moduleCommon: Record<string, JsonSchema> = {
  name: nameSchema('module name'),
  nodes: {
    type: 'array',
    minItems: 1,
    uniqueItems: true,
    items: nameSchema('node name'),
    expect: 'a list of node names',
  },
  autostart: { type: 'boolean' },
  scripts: object({
    start_both: relativePath('a script path (relative to the module file)'),
    stop_both: relativePath('a script path (relative to the module file)'),
    timeout_ms: ms(100),
    kill_grace_ms: ms(0, 600_000),
  }),
  restart: object({ maxloop: intSchema(0, 1000), window_ms: ms(1000, 7 * 86_400_000) }),
  checkers: { type: 'array', maxItems: 100, items: checkerSchema, expect: 'a list of checkers' },
};

/**
 * A mirror module's scripts are start_prim/stop_prim (run on the primary only), and its checkers
 * say whether they judge the application (`scope: app`, on the primary) or something it depends on
 * (`scope: dependency`, on both nodes). They replace the common `scripts` and `checkers` keys.
 */
const mirrorOverrides: Record<string, JsonSchema> = {
  scripts: object({
    start_prim: relativePath('a script path (relative to the module file)'),
    stop_prim: relativePath('a script path (relative to the module file)'),
    timeout_ms: ms(100),
    kill_grace_ms: ms(0, 600_000),
  }),
  checkers: {
    type: 'array',
    maxItems: 100,
    items: checkerSchemaWith({ scope: { type: 'string', enum: ['app', 'dependency'] } }),
    expect: 'a list of checkers',
  },
};

/** Keys that only one kind of module has. The farm and mirror layers add theirs here. */
export const moduleKindProperties: Record<ModuleKind, Record<string, JsonSchema>> = {
  light: {},
  farm: farmProperties,
  mirror: { ...mirrorProperties, ...mirrorOverrides },
};

/** Keys that a module of one kind must have (beyond `kind`). */
export const moduleKindRequired: Record<ModuleKind, readonly string[]> = {
  light: [],
  farm: farmRequired,
  mirror: mirrorRequired,
};

export function moduleSchema(): JsonSchema {
  return {
    type: 'object',
    required: ['kind'],
    properties: { kind: { type: 'string' } },
    discriminator: { propertyName: 'kind' },
    oneOf: moduleKinds.map((k) => object({ kind: { const: k }, ...moduleCommon, ...moduleKindProperties[k] }, ['kind', ...moduleKindRequired[k]])),
  };
}
