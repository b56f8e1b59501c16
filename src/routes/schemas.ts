// Shared JSON schemas of the HTTP contract (DESIGN §3).

export const errorSchema = {
  type: 'object',
  properties: { errors: { type: 'array', items: { type: 'string' } } },
  required: ['errors'],
} as const;

export const errorResponses = {
  400: errorSchema, 403: errorSchema, 404: errorSchema, 413: errorSchema, 415: errorSchema,
  500: errorSchema, 502: errorSchema, 503: errorSchema,
} as const;
