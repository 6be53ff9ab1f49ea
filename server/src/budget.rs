//! Connection budgets. A connection that has not said a valid `hello` yet is *unauthenticated*
//! and counts against budgets of its own (in total and per source address), never against the
//! authenticated cap (`server.max_connections`): a flood of half-open connections cannot lock
//! real users out. After `hello` the connection moves, in one step, to the authenticated
//! budgets (in total and per source address).
//!
//! [`Counts`] is the pure bookkeeping; [`Budgets`] shares it between connection tasks (one
//! short lock per step) and hands out [`Permit`]s that give their place back when dropped, so
//! a connection that ends any way (even by panic) is no longer counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The limits, from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub authenticated: usize,
    pub authenticated_per_address: usize,
    pub unauthenticated: usize,
    pub unauthenticated_per_address: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many connections waiting to say hello")]
    Unauthenticated,
    #[error("too many connections from {0} waiting to say hello")]
    UnauthenticatedFrom(IpAddr),
    #[error("the server is full")]
    Full,
    #[error("too many connections from {0}")]
    FullFrom(IpAddr),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PerAddress {
    unauthenticated: usize,
    authenticated: usize,
}

/// Who holds a place, per stage and address. Pure: plain data.
#[derive(Debug)]
pub struct Counts {
    limits: Limits,
    unauthenticated: usize,
    authenticated: usize,
    by_address: HashMap<IpAddr, PerAddress>,
}

impl Counts {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            unauthenticated: 0,
            authenticated: 0,
            by_address: HashMap::new(),
        }
    }

    /// A TCP connection was accepted from `addr`.
    pub fn admit(&mut self, addr: IpAddr) -> Result<(), Refusal> {
        if self.unauthenticated >= self.limits.unauthenticated {
            return Err(Refusal::Unauthenticated);
        }
        let here = self.by_address.entry(addr).or_default();
        if here.unauthenticated >= self.limits.unauthenticated_per_address {
            return Err(Refusal::UnauthenticatedFrom(addr));
        }
        here.unauthenticated += 1;
        self.unauthenticated += 1;
        Ok(())
    }

    /// A connection from `addr` said a valid `hello`: move it to the authenticated budgets.
    /// Refused, it stays unauthenticated (and is then closed and released).
    pub fn authenticate(&mut self, addr: IpAddr) -> Result<(), Refusal> {
        if self.authenticated >= self.limits.authenticated {
            return Err(Refusal::Full);
        }
        let here = self.by_address.entry(addr).or_default();
        if here.authenticated >= self.limits.authenticated_per_address {
            return Err(Refusal::FullFrom(addr));
        }
        here.authenticated += 1;
        here.unauthenticated -= 1;
        self.authenticated += 1;
        self.unauthenticated -= 1;
        Ok(())
    }

    /// A connection from `addr` ended.
    pub fn release(&mut self, addr: IpAddr, authenticated: bool) {
        let Some(here) = self.by_address.get_mut(&addr) else {
            return;
        };
        if authenticated {
            here.authenticated -= 1;
            self.authenticated -= 1;
        } else {
            here.unauthenticated -= 1;
            self.unauthenticated -= 1;
        }
        if *here == PerAddress::default() {
            self.by_address.remove(&addr);
        }
    }

    /// (unauthenticated, authenticated) connections held in total.
    pub fn totals(&self) -> (usize, usize) {
        (self.unauthenticated, self.authenticated)
    }
}

/// [`Counts`] shared by the accept loop and every connection task.
#[derive(Debug, Clone)]
pub struct Budgets(Arc<Mutex<Counts>>);

/// One connection's place; given back on drop.
#[derive(Debug)]
pub struct Permit {
    budgets: Budgets,
    addr: IpAddr,
    authenticated: bool,
}

impl Budgets {
    pub fn new(limits: Limits) -> Self {
        Self(Arc::new(Mutex::new(Counts::new(limits))))
    }

    /// Admit a freshly accepted connection as unauthenticated.
    pub fn admit(&self, addr: IpAddr) -> Result<Permit, Refusal> {
        self.lock().admit(addr)?;
        Ok(Permit {
            budgets: self.clone(),
            addr,
            authenticated: false,
        })
    }

    pub fn totals(&self) -> (usize, usize) {
        self.lock().totals()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic while holding this lock would be a bug in `Counts` (plain arithmetic);
        // the counts are still consistent step by step, so keep serving.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Permit {
    /// The connection said a valid `hello`.
    pub fn authenticate(&mut self) -> Result<(), Refusal> {
        self.budgets.lock().authenticate(self.addr)?;
        self.authenticated = true;
        Ok(())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budgets.lock().release(self.addr, self.authenticated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn limits() -> Limits {
        Limits {
            authenticated: 3,
            authenticated_per_address: 2,
            unauthenticated: 3,
            unauthenticated_per_address: 2,
        }
    }

    #[test]
    fn half_open_connections_never_take_authenticated_places() {
        let mut c = Counts::new(limits());
        c.admit(A).unwrap();
        c.admit(A).unwrap();
        assert_eq!(c.admit(A), Err(Refusal::UnauthenticatedFrom(A)));
        c.admit(B).unwrap();
        assert_eq!(c.admit(B), Err(Refusal::Unauthenticated), "total budget");
        // Those three never authenticate; a connection that does still gets in once one of
        // them gives its place back (deadline), and holds an authenticated place.
        c.release(A, false);
        c.admit(B).unwrap();
        assert_eq!(c.admit(A), Err(Refusal::Unauthenticated));
        c.authenticate(B).unwrap();
        assert_eq!(c.totals(), (2, 1));
        // Its authenticated place freed an unauthenticated one.
        c.admit(A).unwrap();
    }

    #[test]
    fn authenticated_connections_are_capped_in_total_and_per_address() {
        let mut c = Counts::new(limits());
        for _ in 0..2 {
            c.admit(A).unwrap();
            c.authenticate(A).unwrap();
        }
        c.admit(A).unwrap();
        assert_eq!(c.authenticate(A), Err(Refusal::FullFrom(A)));
        c.release(A, false);
        c.admit(B).unwrap();
        c.authenticate(B).unwrap();
        c.admit(B).unwrap();
        assert_eq!(c.authenticate(B), Err(Refusal::Full));
        assert_eq!(c.totals(), (1, 3));
    }

    #[test]
    fn released_places_are_forgotten() {
        let mut c = Counts::new(limits());
        c.admit(A).unwrap();
        c.authenticate(A).unwrap();
        c.release(A, true);
        assert_eq!(c.totals(), (0, 0));
        assert!(c.by_address.is_empty(), "no per-address entry left behind");
    }

    #[test]
    fn permits_give_their_place_back_when_dropped() {
        let budgets = Budgets::new(limits());
        let mut p = budgets.admit(A).unwrap();
        let q = budgets.admit(A).unwrap();
        p.authenticate().unwrap();
        assert_eq!(budgets.totals(), (1, 1));
        drop(p);
        drop(q);
        assert_eq!(budgets.totals(), (0, 0));
    }
}
