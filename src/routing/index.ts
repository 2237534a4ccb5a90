export { Router, senderMatches, type RouteDecision, type RouteInput, type RoutePart } from './router.js';
