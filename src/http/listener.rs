//! The listening socket: bound with an explicit backlog (TCP on loopback, TCP for TLS, or a Unix
//! socket), accepted from, and closed without resetting the connections the kernel still queues.
//!
//! Knows sockets only; the accept loop and what is done with a connection are `server`'s.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::tls::Tls;
use crate::config::Listen;

/// Connections the kernel holds for us while we are at `max_connections` (capped by
/// `net.core.somaxconn`, 4096 on current kernels).
const BACKLOG: i32 = 1024;

/// A bound listener.
pub enum Listener {
    Tcp(TcpListener),
    Tls(TcpListener, Arc<Tls>),
    Unix(UnixListener, PathBuf),
}

/// An accepted connection, before any TLS handshake.
pub(super) enum Accepted {
    Tcp(TcpStream, std::net::SocketAddr),
    Unix(UnixStream),
}

impl Listener {
    /// Binds `listen` with a backlog of [`BACKLOG`] (a Unix socket replaces a stale file and
    /// gets mode 0660).
    pub fn bind(listen: &Listen, tls: Option<Arc<Tls>>) -> io::Result<Listener> {
        use socket2::{Domain, SockAddr, Socket, Type};
        let socket = |domain: Domain, addr: &SockAddr| -> io::Result<Socket> {
            let s = Socket::new(domain, Type::STREAM, None)?;
            if domain != Domain::UNIX {
                s.set_reuse_address(true)?;
            }
            s.bind(addr)?;
            s.listen(BACKLOG)?;
            s.set_nonblocking(true)?;
            Ok(s)
        };
        match listen {
            Listen::Tcp(addr) => {
                let s = socket(Domain::for_address(*addr), &SockAddr::from(*addr))?;
                let tcp = TcpListener::from_std(s.into())?;
                Ok(match tls {
                    Some(tls) => Listener::Tls(tcp, tls),
                    None => Listener::Tcp(tcp),
                })
            }
            Listen::Unix(path) => {
                let _ = std::fs::remove_file(path);
                let s = socket(Domain::UNIX, &SockAddr::unix(path)?)?;
                let unix = UnixListener::from_std(s.into())?;
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
                Ok(Listener::Unix(unix, path.clone()))
            }
        }
    }

    /// Where it listens, for the log.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => format!("{} (HTTP)", addr_of(l)),
            Listener::Tls(l, _) => format!("{} (TLS)", addr_of(l)),
            Listener::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }

    pub(super) async fn accept(&self) -> io::Result<Accepted> {
        match self {
            Listener::Tcp(l) | Listener::Tls(l, _) => {
                let (stream, remote) = l.accept().await?;
                Ok(Accepted::Tcp(stream, remote))
            }
            Listener::Unix(l, _) => Ok(Accepted::Unix(l.accept().await?.0)),
        }
    }

    /// Stops new connections from arriving, then takes the ones the kernel already queued, so
    /// that closing the socket resets none of them. On TCP a filter that drops every incoming
    /// packet makes new SYNs go unanswered (the client retries, and meets a refusal once the
    /// socket is closed); a Unix socket's path is removed.
    pub(super) fn close(self) -> Vec<Accepted> {
        let mut queued = Vec::new();
        match self {
            Listener::Tcp(l) | Listener::Tls(l, _) => {
                let Ok(std) = l.into_std() else {
                    return queued;
                };
                let drop_all = [socket2::SockFilter::new(0x06, 0, 0, 0)]; // BPF_RET|BPF_K 0
                if let Err(e) = socket2::SockRef::from(&std).attach_filter(&drop_all) {
                    tracing::warn!(error = %e, "cannot hold back new connections while closing");
                }
                drain_queue(
                    || std.accept(),
                    &mut queued,
                    |(s, remote)| {
                        s.set_nonblocking(true)?;
                        Ok(Accepted::Tcp(TcpStream::from_std(s)?, remote))
                    },
                );
            }
            Listener::Unix(l, path) => {
                let _ = std::fs::remove_file(&path);
                let Ok(std) = l.into_std() else {
                    return queued;
                };
                drain_queue(
                    || std.accept(),
                    &mut queued,
                    |(s, _)| {
                        s.set_nonblocking(true)?;
                        Ok(Accepted::Unix(UnixStream::from_std(s)?))
                    },
                );
            }
        }
        queued
    }
}

fn addr_of(l: &TcpListener) -> String {
    l.local_addr()
        .map_or_else(|e| e.to_string(), |a| a.to_string())
}

/// Accepts on a non-blocking std listener until nothing is left.
fn drain_queue<T>(
    mut accept: impl FnMut() -> io::Result<T>,
    into: &mut Vec<Accepted>,
    wrap: impl Fn(T) -> io::Result<Accepted>,
) {
    loop {
        match accept().and_then(&wrap) {
            Ok(conn) => into.push(conn),
            Err(e) if is_per_connection(&e) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                tracing::warn!(error = %e, "closing the listener: a queued connection was lost");
                return;
            }
        }
    }
}

/// Errors of one connection that came and went, not of the listener.
pub(super) fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}
