//! How a peer connection is built: the media engine (Opus only, our payload type and fmtp),
//! the interceptors (RTCP reports at audio's interval; no NACK, no TWCC), the setting engine
//! (ICE timers, acceptance waits, no mDNS, IPv4 UDP, loopback mode) and the ICE servers.
//!
//! Must never wire callbacks or keep state: it returns a fresh `RTCPeerConnection` and
//! `peer.rs` takes it from there.

use std::net::IpAddr;
use std::time::Duration;

use webrtc::api::APIBuilder;
use webrtc::api::media_engine::{MIME_TYPE_OPUS, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::interceptor::report::receiver::ReceiverReport;
use webrtc::interceptor::report::sender::SenderReport;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::policy::ice_transport_policy::RTCIceTransportPolicy;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};

use super::{PeerConfig, RtcError};
use crate::rtp::OPUS_CLOCK_RATE;

/// Opus RTP payload type we offer (the value browsers and webrtc's defaults use).
pub(super) const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Opus fmtp: 10 ms minimum packet time, in-band FEC on (RFC 7587 section 7). Kept as
/// browsers offer it, so the codec lines match theirs exactly, although our receive side plays
/// any Opus packet length (2.5–120 ms, `audio::PacketDuration`) and a client in the low-delay
/// mode (`--frame-ms 5`) sends 5 ms packets below this minimum: `minptime` only advises, and
/// libwebrtc's receiver, like ours, decodes each packet by its own duration.
const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";
/// RTCP sender and receiver reports, each way: what libwebrtc uses for audio (webrtc's
/// default of 1 s is meant for video). Reports carry RTT and loss for the peers panel, which
/// can wait that long; at 1 s they alone cost a silent call ~2 kbit/s per peer.
const RTCP_REPORT_INTERVAL: Duration = Duration::from_secs(5);

pub(super) fn opus_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: OPUS_CLOCK_RATE,
        // RFC 7587: the SDP always says opus/48000/2, whatever is actually encoded.
        channels: 2,
        sdp_fmtp_line: OPUS_FMTP.to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Builds a peer connection with our media engine, interceptors and setting engine.
pub(super) async fn build_peer_connection(
    config: &PeerConfig,
) -> Result<RTCPeerConnection, RtcError> {
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                capability: opus_capability(),
                payload_type: OPUS_PAYLOAD_TYPE,
                ..Default::default()
            },
            RTPCodecType::Audio,
        )
        .map_err(RtcError::Create)?;
    // webrtc's default set minus NACK (its generator and responder only serve video) and
    // minus transport-wide congestion control (TWCC): its receiver woke every 100 ms per peer
    // to build feedback that no sender here uses (webrtc-rs adds the sequence numbers only
    // with its TWCC sender, for bandwidth estimation of video). Audio's report interval.
    let mut registry = Registry::new();
    registry.add(Box::new(
        ReceiverReport::builder().with_interval(RTCP_REPORT_INTERVAL),
    ));
    registry.add(Box::new(
        SenderReport::builder().with_interval(RTCP_REPORT_INTERVAL),
    ));

    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(setting_engine(config))
        .build();

    let rtc_config = RTCConfiguration {
        ice_servers: config
            .ice_servers
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone().unwrap_or_default(),
                credential: s.credential.clone().unwrap_or_default(),
            })
            .collect(),
        ice_transport_policy: if config.relay_only {
            RTCIceTransportPolicy::Relay
        } else {
            RTCIceTransportPolicy::All
        },
        ..Default::default()
    };
    api.new_peer_connection(rtc_config)
        .await
        .map_err(RtcError::Create)
}

fn setting_engine(config: &PeerConfig) -> SettingEngine {
    let mut s = SettingEngine::default();
    let t = config.timeouts;
    s.set_ice_timeouts(Some(t.disconnected), Some(t.failed), Some(t.keepalive));
    // Acceptance waits: a pair is only nominated once the wait for the type of both its
    // candidates has passed since the agent started (webrtc-ice agent_selector.rs:69-107).
    // Defaults are srflx 0.5 s, prflx 1 s, relay 2 s. All 0: the first pair that works
    // carries the call at once, and our webrtc-ice renominates a better one that succeeds
    // later (vendor/webrtc-ice/VENDORED.md), as libwebrtc switches. prflx especially: with
    // trickle ICE the controlling side usually learns the remote through its checks (prflx)
    // before the remote's candidate arrives. Relay: a UDP-blocked network's TLS relay was
    // held 0.5 s (2 s by default) only so that a direct path could not be lost.
    s.set_srflx_acceptance_min_wait(Some(Duration::ZERO));
    s.set_prflx_acceptance_min_wait(Some(Duration::ZERO));
    s.set_relay_acceptance_min_wait(Some(Duration::ZERO));
    // No mDNS: hosts are announced by IP (a terminal client has no browser privacy story to
    // keep, and mDNS would multicast on every interface).
    s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    // IPv4 UDP only: webrtc 0.17.2 does no TCP ICE, and IPv6 doubles the checks for little.
    s.set_network_types(vec![NetworkType::Udp4]);
    if config.loopback {
        s.set_include_loopback_candidate(true);
        s.set_interface_filter(Box::new(|name: &str| name == "lo"));
        s.set_ip_filter(Box::new(|ip: IpAddr| ip.is_loopback()));
    }
    s
}
