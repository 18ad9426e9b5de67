/**
 * Plans the transit link: desired `transit` x observed host -> ordered actions. Pure: no I/O.
 *
 * Ownership: the desired interface's MTU, admin state, desired address and desired routes are
 * ours to set. We delete an interface only when the state file says we created it (and it is
 * still the VLAN we made), and remove an address or route only when the state file says we put
 * it there and the desired state no longer wants it. Everything else on the host stays as is.
 *
 * Order of the actions, which apply/ follows:
 *   1. release interfaces the desired state no longer names (delete our VLAN, or remove our
 *      address and routes from an interface we only managed)
 *   2. create the VLAN (after deleting ours if it has the wrong parent or id)
 *   3. MTU, then admin up (routes need the link up)
 *   4. the desired address, and removal of the previous desired address
 *   5. desired routes (add or replace), then removal of routes we added that are not desired
 *
 * Every check on the host's facts (parent present, MTU bounds, kernel 802.1Q support,
 * a foreign interface in the way) runs before any action is returned, so a bad input leaves
 * the link untouched. Limitation: an MTU we changed is not restored when the transit section
 * is removed (the original MTU is not remembered).
 */
import { ErrorCode, TunnelwardenError } from '../errors.js';
import { cidrsOverlap, formatIp, parseCidr, parseIp, type IpFamily } from '../model/net.js';
import type { DesiredState } from '../model/schema.js';
import {
  canonicalAddress,
  canonicalDestination,
  type InterfaceObservation,
  type IpLink,
  type KernelRoute,
  type LinkObservation,
  type LinkState,
  type LinkStateEntry,
  type RecordedRoute,
} from '../observe/link.js';
import type { ActionBase } from './actions.js';

export type Transit = NonNullable<DesiredState['transit']>;

interface LinkActionBase extends ActionBase {
  resource: 'link';
}

/** The link resource's actions. Route actions carry the route in canonical form. */
export type LinkAction =
  | (LinkActionBase & { type: 'create-vlan'; parent: string; vlanId: number })
  | (LinkActionBase & { type: 'delete-vlan' })
  | (LinkActionBase & { type: 'set-mtu'; mtuBytes: number })
  | (LinkActionBase & { type: 'set-up' })
  | (LinkActionBase & { type: 'add-address' | 'remove-address'; address: string })
  | (LinkActionBase & {
      type: 'add-route' | 'replace-route' | 'delete-route';
      route: RecordedRoute;
    });

/** The kernel's metric for a route added without one. */
export function defaultMetric(family: IpFamily): number {
  return family === 4 ? 0 : 1024;
}

/** A desired route in the canonical form the kernel reports. */
export function desiredRoute(route: Transit['routes'][number]): RecordedRoute {
  const cidr = parseCidr(route.destination);
  const family: IpFamily = cidr?.family ?? 4;
  const gateway = route.gateway === undefined ? undefined : parseIp(route.gateway);
  return {
    destination: canonicalDestination(route.destination, family) ?? route.destination,
    ...(gateway === undefined ? {} : { gateway: formatIp(gateway) }),
    onLink: route.onLink,
    metric: route.metric ?? defaultMetric(family),
  };
}

/** Routes are the same kernel route when destination and metric match. */
function sameKey(
  a: { destination: string; metric: number },
  b: { destination: string; metric: number },
) {
  return a.destination === b.destination && a.metric === b.metric;
}

/** "172.16.1.0/24 via 172.16.0.1 onlink metric 50". */
export function describeRoute(route: {
  destination: string;
  gateway?: string | undefined;
  onLink: boolean;
  metric: number;
}): string {
  const via = route.gateway === undefined ? '' : ` via ${route.gateway}`;
  const onlink = route.onLink ? ' onlink' : '';
  const metric =
    route.metric === defaultMetric(parseCidr(route.destination)?.family ?? 4)
      ? ''
      : ` metric ${route.metric}`;
  return `${route.destination}${via}${onlink}${metric}`;
}

function findRoute(routes: readonly KernelRoute[], key: RecordedRoute): KernelRoute | undefined {
  return routes.find((route) => route.type === undefined && sameKey(route, key));
}

function matchesRoute(route: KernelRoute, wanted: RecordedRoute): boolean {
  return route.gateway === wanted.gateway && route.onLink === wanted.onLink;
}

function describeLink(link: IpLink): string {
  if (link.vlan) return `VLAN ${link.vlan.id} on ${link.parent ?? 'an unknown parent'}`;
  return `a ${link.kind ?? 'physical'} interface`;
}

function invalid(
  code: (typeof ErrorCode)[keyof typeof ErrorCode],
  message: string,
  details: Record<string, unknown>,
) {
  return new TunnelwardenError('invalid-config', code, `transit: ${message}`, { details });
}

/** Whether the existing link is the VLAN we want. */
function isWantedVlan(link: IpLink, transit: Transit): boolean {
  return (
    link.kind === 'vlan' &&
    link.parent === transit.parent &&
    link.vlan !== undefined &&
    link.vlan.id === transit.vlanId &&
    (link.vlan.protocol === undefined || link.vlan.protocol === '802.1Q')
  );
}

/** Whether the existing link is the VLAN we created and recorded, so we may delete it. */
function isOurVlan(link: IpLink | undefined, entry: LinkStateEntry | undefined): boolean {
  return (
    link !== undefined &&
    entry?.created === true &&
    link.kind === 'vlan' &&
    (entry.parent === undefined || link.parent === entry.parent) &&
    (entry.vlanId === undefined || link.vlan?.id === entry.vlanId)
  );
}

/**
 * Checks everything about the desired link that only the host can tell. Returns whether the
 * VLAN has to be created and whether an existing one of ours has to go first.
 * Throws TunnelwardenError: invalid-config (parent missing, interface missing, MTU out of
 * bounds, a foreign interface in the way) or unsupported (kernel without 802.1Q).
 */
function validate(
  transit: Transit,
  observed: LinkObservation,
): { create: boolean; recreate: boolean } {
  const name = transit.interface;
  const current = observed.interfaces.get(name)?.link;
  const entry = observed.state.interfaces[name];
  const wantsVlan = transit.parent !== undefined && transit.vlanId !== undefined;
  let create = false;
  let recreate = false;

  if (wantsVlan) {
    const parent = observed.parent;
    if (!parent) {
      throw invalid(
        ErrorCode.linkParentMissing,
        `parent interface ${transit.parent} of VLAN ${name} does not exist`,
        { interface: name, parent: transit.parent },
      );
    }
    if (transit.mtuBytes !== undefined && transit.mtuBytes > parent.mtuBytes) {
      throw invalid(
        ErrorCode.linkMtuOutOfRange,
        `mtuBytes ${transit.mtuBytes} is above the MTU ${parent.mtuBytes} of parent ${parent.name}; ` +
          'a VLAN cannot carry larger frames than its parent',
        { interface: name, mtuBytes: transit.mtuBytes, parentMtuBytes: parent.mtuBytes },
      );
    }
    if (current && !isWantedVlan(current, transit)) {
      if (!isOurVlan(current, entry)) {
        throw invalid(
          ErrorCode.linkConflict,
          `${name} exists as ${describeLink(current)}, not VLAN ${transit.vlanId} on ${transit.parent}, ` +
            'and tunnelwarden did not create it; rename or remove it by hand',
          { interface: name },
        );
      }
      recreate = true;
    }
    create = !current || recreate;
    if (create && !observed.vlanSupport?.available) {
      const cause =
        observed.vlanSupport && !observed.vlanSupport.available
          ? `: ${observed.vlanSupport.cause}`
          : '';
      throw new TunnelwardenError(
        'unsupported',
        ErrorCode.unsupportedKernel,
        `transit: kernel lacks 802.1Q (module 8021q not available), so VLAN ${name} cannot be created${cause}`,
        { details: { interface: name } },
      );
    }
  } else if (!current) {
    throw invalid(
      ErrorCode.linkInterfaceMissing,
      `interface ${name} does not exist (without parent and vlanId tunnelwarden manages an ` +
        'existing interface and does not create one)',
      { interface: name },
    );
  }

  if (transit.mtuBytes !== undefined && current && !create) {
    const { minMtuBytes, maxMtuBytes } = current;
    const tooSmall = minMtuBytes !== undefined && transit.mtuBytes < minMtuBytes;
    const tooLarge = maxMtuBytes !== undefined && transit.mtuBytes > maxMtuBytes;
    if (tooSmall || tooLarge) {
      throw invalid(
        ErrorCode.linkMtuOutOfRange,
        `mtuBytes ${transit.mtuBytes} is outside what ${name} accepts ` +
          `(min_mtu ${minMtuBytes ?? 'none'}, max_mtu ${maxMtuBytes ?? 'none'})`,
        { interface: name, mtuBytes: transit.mtuBytes, minMtuBytes, maxMtuBytes },
      );
    }
  }
  return { create, recreate };
}

/** Actions that give back an interface the desired state no longer names. */
function planRelease(
  name: string,
  entry: LinkStateEntry,
  seen: InterfaceObservation | undefined,
): LinkAction[] {
  const link = seen?.link;
  if (!seen || !link) return [];
  if (isOurVlan(link, entry)) {
    return [
      {
        resource: 'link',
        type: 'delete-vlan',
        target: name,
        reason: 'created by tunnelwarden, no longer desired',
      },
    ];
  }
  const actions: LinkAction[] = [];
  if (
    entry.address !== undefined &&
    seen.addresses.some((address) => address.address === entry.address)
  ) {
    actions.push({
      resource: 'link',
      type: 'remove-address',
      target: name,
      address: entry.address,
      detail: `[${entry.address}]`,
      reason: `address ${entry.address} set by tunnelwarden, interface no longer desired`,
    });
  }
  actions.push(...planRouteRemovals(name, entry.routes, [], seen.routes));
  return actions;
}

/** delete-route for recorded routes that are no longer desired but still in the kernel as we set them. */
function planRouteRemovals(
  name: string,
  recorded: readonly RecordedRoute[],
  desired: readonly RecordedRoute[],
  kernel: readonly KernelRoute[],
): LinkAction[] {
  const actions: LinkAction[] = [];
  for (const route of recorded) {
    if (desired.some((wanted) => sameKey(wanted, route))) continue;
    const present = findRoute(kernel, route);
    if (!present || present.gateway !== route.gateway) continue;
    actions.push({
      resource: 'link',
      type: 'delete-route',
      target: name,
      route,
      detail: `[${describeRoute(route)}]`,
      reason: `route ${route.destination} added by tunnelwarden, no longer desired`,
    });
  }
  return actions;
}

/** The address actions: the desired address in place, our previous one gone. */
function planAddresses(
  name: string,
  wanted: string,
  entry: LinkStateEntry | undefined,
  seen: InterfaceObservation,
  fresh: boolean,
): { actions: LinkAction[]; flushesIpv4Routes: boolean } {
  const present = new Set(fresh ? [] : seen.addresses.map((address) => address.address));
  const add: LinkAction[] = [];
  const remove: LinkAction[] = [];
  if (!present.has(wanted)) {
    add.push({
      resource: 'link',
      type: 'add-address',
      target: name,
      address: wanted,
      detail: `[${wanted}]`,
      reason: fresh ? `address ${wanted} wanted on the new interface` : `address ${wanted} missing`,
    });
  }
  const previous = entry?.address;
  if (previous !== undefined && previous !== wanted && present.has(previous)) {
    remove.push({
      resource: 'link',
      type: 'remove-address',
      target: name,
      address: previous,
      detail: `[${previous}]`,
      reason: `address ${previous} was the desired address, want ${wanted}`,
    });
  }
  if (remove.length === 0) return { actions: add, flushesIpv4Routes: false };

  // A new address in the old one's subnet would be its secondary, and the kernel deletes
  // secondaries with their primary (unless promote_secondaries): remove the old one first.
  // Otherwise add first, so the interface never loses its last address (which flushes routes).
  const oldCidr = parseCidr(previous!);
  const newCidr = parseCidr(wanted);
  const sameSubnet =
    oldCidr !== undefined && newCidr !== undefined && cidrsOverlap(oldCidr, newCidr);
  if (!sameSubnet) return { actions: [...add, ...remove], flushesIpv4Routes: false };
  const othersIpv4 = seen.addresses.filter(
    (address) => address.family === 4 && address.address !== previous,
  );
  const flushesIpv4Routes = oldCidr.family === 4 && othersIpv4.length === 0;
  return { actions: [...remove, ...add], flushesIpv4Routes };
}

/** The route actions for the desired routes on the transit interface. */
function planRoutes(
  name: string,
  routes: readonly RecordedRoute[],
  kernel: readonly KernelRoute[],
  assumeMissing: (route: RecordedRoute) => string | undefined,
): LinkAction[] {
  const actions: LinkAction[] = [];
  for (const route of routes) {
    const detail = `[${describeRoute(route)}]`;
    const missingBecause = assumeMissing(route);
    const present = missingBecause === undefined ? findRoute(kernel, route) : undefined;
    if (!present) {
      actions.push({
        resource: 'link',
        type: 'add-route',
        target: name,
        route,
        detail,
        reason: missingBecause ?? `route ${route.destination} missing`,
      });
    } else if (!matchesRoute(present, route)) {
      actions.push({
        resource: 'link',
        type: 'replace-route',
        target: name,
        route,
        detail,
        reason: `route ${describeRoute(present)}, want ${describeRoute(route)}`,
      });
    }
  }
  return actions;
}

/** What the planner is given. */
export interface LinkPlanInput {
  transit: Transit | undefined;
  observed: LinkObservation;
}

/**
 * Plans the link resource. Throws TunnelwardenError before returning any action when the
 * desired link cannot be realised on this host (see `validate`).
 */
export function planLink(input: LinkPlanInput): LinkAction[] {
  const { transit, observed } = input;
  const checks = transit ? validate(transit, observed) : undefined;
  const actions: LinkAction[] = [];

  for (const [name, entry] of Object.entries(observed.state.interfaces)) {
    if (name === transit?.interface) continue;
    actions.push(...planRelease(name, entry, observed.interfaces.get(name)));
  }
  if (!transit || !checks) return actions;

  const name = transit.interface;
  const seen = observed.interfaces.get(name) ?? { link: undefined, addresses: [], routes: [] };
  const entry = observed.state.interfaces[name];
  if (checks.recreate) {
    actions.push({
      resource: 'link',
      type: 'delete-vlan',
      target: name,
      reason: `is ${describeLink(seen.link!)}, want VLAN ${transit.vlanId} on ${transit.parent}`,
    });
  }
  if (checks.create) {
    actions.push({
      resource: 'link',
      type: 'create-vlan',
      target: name,
      parent: transit.parent!,
      vlanId: transit.vlanId!,
      detail: `[VLAN ${transit.vlanId} on ${transit.parent}]`,
      reason: checks.recreate ? 'recreated with the desired parent and id' : 'interface missing',
    });
  }

  const mtuBytes = checks.create ? observed.parent!.mtuBytes : seen.link!.mtuBytes;
  if (transit.mtuBytes !== undefined && transit.mtuBytes !== mtuBytes) {
    actions.push({
      resource: 'link',
      type: 'set-mtu',
      target: name,
      mtuBytes: transit.mtuBytes,
      detail: `[${transit.mtuBytes}]`,
      reason: `mtu ${mtuBytes}, want ${transit.mtuBytes}`,
    });
  }
  if (checks.create || !seen.link!.adminUp) {
    actions.push({
      resource: 'link',
      type: 'set-up',
      target: name,
      reason: checks.create ? 'a new interface starts down, want up' : 'link is down, want up',
    });
  }

  const wanted = canonicalAddress(transit.address) ?? transit.address;
  const addresses = planAddresses(name, wanted, entry, seen, checks.create);
  actions.push(...addresses.actions);

  const routes = transit.routes.map(desiredRoute);
  const flushed = (route: RecordedRoute) =>
    addresses.flushesIpv4Routes && parseCidr(route.destination)?.family === 4
      ? `route ${route.destination} is flushed when the last IPv4 address goes`
      : undefined;
  const kernelRoutes = checks.create ? [] : seen.routes;
  actions.push(...planRoutes(name, routes, kernelRoutes, flushed));
  if (!checks.create)
    actions.push(...planRouteRemovals(name, entry?.routes ?? [], routes, kernelRoutes));
  return actions;
}

// ---- the state file, as data ---------------------------------------------------------------

/** Actions that claim something: apply records them in the state file before running them. */
export function claimsOwnership(action: LinkAction): boolean {
  return ['create-vlan', 'add-address', 'add-route', 'replace-route'].includes(action.type);
}

/** The state after `action` has been applied. Pure; never mutates `state`. */
export function stateAfter(state: LinkState, action: LinkAction): LinkState {
  const interfaces: Record<string, LinkStateEntry> = structuredClone(state.interfaces);
  const name = action.target;
  const entry: LinkStateEntry = interfaces[name] ?? { created: false, routes: [] };
  switch (action.type) {
    case 'create-vlan':
      interfaces[name] = { ...entry, created: true, parent: action.parent, vlanId: action.vlanId };
      break;
    case 'delete-vlan':
      delete interfaces[name];
      break;
    case 'add-address':
      interfaces[name] = { ...entry, address: action.address };
      break;
    case 'remove-address':
      if (entry.address === action.address) delete entry.address;
      interfaces[name] = entry;
      break;
    case 'add-route':
    case 'replace-route':
      interfaces[name] = {
        ...entry,
        routes: [...entry.routes.filter((route) => !sameKey(route, action.route)), action.route],
      };
      break;
    case 'delete-route':
      interfaces[name] = {
        ...entry,
        routes: entry.routes.filter((route) => !sameKey(route, action.route)),
      };
      break;
    case 'set-mtu':
    case 'set-up':
      return state;
  }
  for (const [key, value] of Object.entries(interfaces)) {
    if (!value.created && value.address === undefined && value.routes.length === 0)
      delete interfaces[key];
  }
  return { interfaces };
}

/** The state file's text. */
export function renderLinkState(state: LinkState): string {
  return `${JSON.stringify({ version: 1, interfaces: state.interfaces }, null, 2)}\n`;
}
