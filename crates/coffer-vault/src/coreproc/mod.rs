//! The vault's trusted core as a process of its own (issue 11; docs/VAULT-CORE.md): its
//! keys and sealed key file ([`keys`]), its store of entries ([`store`]), the driver that
//! orders "commit, then reply" ([`service`]), the socket it listens on ([`server`]), and
//! the host's side of the link ([`link`]).

pub mod group;
pub mod keys;
pub mod link;
pub mod server;
pub mod service;
pub mod store;
