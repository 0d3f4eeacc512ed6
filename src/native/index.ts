// The TS face of croft's Rust addon (crates/croft-napi): options in, CroftError out.
export { jhash, nftBucket } from './jhash.js';
export { ArpResponder, arpSendGratuitous, type ArpAddress, type ArpStats } from './arp.js';
export { HeartbeatPump, type HeartbeatDatagram, type HeartbeatLan, type HeartbeatPumpStats } from './heartbeat.js';
export { loadNative, nativeAddonPath, nativeDir } from './load.js';
export { NftSession, type NftSessionRun } from './nft.js';
export {
  MirrorDirtyLog,
  MirrorMount,
  MirrorReplica,
  lazyUnmount,
  quarantineCopy,
  type AckLevel,
  type FailMode,
  type SyncMode,
  type MirrorDirtyEntry,
  type MirrorDirtyLogOptions,
  type MirrorDirtyLogStatus,
  type MirrorEvent,
  type MirrorLinkStatus,
  type AckLatencyHistogram,
  type MirrorMountOptions,
  type MirrorPeerOptions,
  type MirrorReintegrateOptions,
  type MirrorReintegrationPhase,
  type MirrorReintegrationStatus,
  type MirrorReplicaOptions,
  type MirrorReplicaStatus,
  type MirrorStatus,
  type MirrorVerifyReport,
} from './mirror.js';
