/**
 * The directives and scalar of the resource schema language, declared by the
 * gateway so schema files need not declare them (a file may, for editor
 * tooling: the gateway's declaration wins).
 */
export const directiveTypeDefs = /* GraphQL */ `
"Maps an object type to the RES resources whose rid matches this pattern."
directive @resource(rid: String!) on OBJECT
"A Query field that gets the resource named by the rid template."
directive @get(rid: String!) on FIELD_DEFINITION
"A Mutation field that calls a method on the resource named by the rid template."
directive @call(rid: String!, method: String!, params: String) on FIELD_DEFINITION
"A Mutation field that sends an auth request (no access check)."
directive @auth(rid: String!, method: String!, params: String) on FIELD_DEFINITION
"A field that returns the resource ID of its object."
directive @rid on FIELD_DEFINITION
"Maps a field to a model property of another name."
directive @field(name: String!) on FIELD_DEFINITION
"A Subscription field that streams the payloads of a custom event."
directive @event(rid: String!, name: String!) on FIELD_DEFINITION
"""
A query that streams its result: the full result first (with revision 1),
then a JSON Patch from the previous result for each change. patch: false
sends full results instead; if: false makes it an ordinary query.
"""
directive @live(if: Boolean = true, patch: Boolean = true) on QUERY
"Any JSON value: RES data values and shapes the schema does not map."
scalar JSON
`;

export const gatewayDirectiveNames = new Set(['resource', 'get', 'call', 'auth', 'rid', 'field', 'event', 'live']);
export const gatewayScalarNames = new Set(['JSON']);
