export { Router, senderMatches, type RouteDecision, type RouteInput } from './router.js';
