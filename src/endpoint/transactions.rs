//! The endpoint's one transaction table (RFC 3261 §17): every transaction
//! in flight by its [`TransactionKey`], sending what each queues, waking
//! each at its `poll_timeout`, and telling the calls what ended.

use std::collections::HashMap;
use std::time::Instant;

use super::{CallId, EndReason, Endpoint, WakeKey};
use crate::sip::Transmit;
use crate::sip::transaction::{
    ClientEvent, InviteServer, NonInviteClient, NonInviteServer, Role, ServerEvent, TransactionKey,
};

/// An INVITE server transaction and what it belongs to.
pub(super) struct InviteEntry {
    pub tx: InviteServer,
    pub call: Option<CallId>,
}

/// Our BYE, waiting for its final response.
pub(super) struct ByeEntry {
    pub tx: NonInviteClient,
    pub call: CallId,
}

enum Transaction {
    /// An INVITE or re-INVITE we answer.
    Invite(InviteEntry),
    /// BYE, INFO, CANCEL… we answer.
    NonInvite(NonInviteServer),
    /// A BYE we sent.
    Bye(ByeEntry),
}

impl Transaction {
    fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Transaction::Invite(entry) => entry.tx.poll_transmit(),
            Transaction::NonInvite(tx) => tx.poll_transmit(),
            Transaction::Bye(entry) => entry.tx.poll_transmit(),
        }
    }

    fn is_terminated(&self) -> bool {
        match self {
            Transaction::Invite(entry) => entry.tx.is_terminated(),
            Transaction::NonInvite(tx) => tx.is_terminated(),
            Transaction::Bye(entry) => entry.tx.is_terminated(),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Transaction::Invite(entry) => entry.tx.poll_timeout(),
            Transaction::NonInvite(tx) => tx.poll_timeout(),
            Transaction::Bye(entry) => entry.tx.poll_timeout(),
        }
    }
}

/// Every transaction in flight. The key's role and method say which
/// machine it holds: INVITE or not, ours or the peer's.
#[derive(Default)]
pub(super) struct Transactions {
    table: HashMap<TransactionKey, Transaction>,
    /// How many of them are non-INVITE server transactions, the kind a
    /// caller can multiply (see `MAX_SERVER_TRANSACTIONS`).
    non_invite_servers: usize,
}

impl Transactions {
    pub fn invite_mut(&mut self, key: &TransactionKey) -> Option<&mut InviteEntry> {
        match self.table.get_mut(key) {
            Some(Transaction::Invite(entry)) => Some(entry),
            _ => None,
        }
    }

    pub fn invite(&self, key: &TransactionKey) -> Option<&InviteEntry> {
        match self.table.get(key) {
            Some(Transaction::Invite(entry)) => Some(entry),
            _ => None,
        }
    }

    pub fn non_invite_mut(&mut self, key: &TransactionKey) -> Option<&mut NonInviteServer> {
        match self.table.get_mut(key) {
            Some(Transaction::NonInvite(tx)) => Some(tx),
            _ => None,
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn non_invite_servers(&self) -> usize {
        self.non_invite_servers
    }

    pub fn insert_invite(&mut self, key: TransactionKey, entry: InviteEntry) {
        self.insert(key, Transaction::Invite(entry));
    }

    pub fn insert_non_invite(&mut self, key: TransactionKey, tx: NonInviteServer) {
        self.insert(key, Transaction::NonInvite(tx));
    }

    pub fn insert_bye(&mut self, key: TransactionKey, entry: ByeEntry) {
        self.insert(key, Transaction::Bye(entry));
    }

    fn insert(&mut self, key: TransactionKey, transaction: Transaction) {
        let counts = matches!(transaction, Transaction::NonInvite(_));
        let replaced = self.table.insert(key, transaction);
        self.non_invite_servers += usize::from(counts);
        if matches!(replaced, Some(Transaction::NonInvite(_))) {
            self.non_invite_servers -= 1;
        }
    }

    fn remove(&mut self, key: &TransactionKey) {
        if let Some(Transaction::NonInvite(_)) = self.table.remove(key) {
            self.non_invite_servers -= 1;
        }
    }
}

impl Endpoint {
    /// Sends what a transaction queued; drops it once terminated, else
    /// schedules its next wake-up.
    pub(super) fn flush_transaction(&mut self, key: &TransactionKey) {
        let Some(transaction) = self.transactions.table.get_mut(key) else {
            return;
        };
        while let Some(t) = transaction.poll_transmit() {
            self.outbox.push_back(t);
        }
        if transaction.is_terminated() {
            self.transactions.remove(key);
        } else {
            let at = transaction.poll_timeout();
            self.wakeups.schedule(at, WakeKey::Transaction(key.clone()));
        }
    }

    pub(super) fn transaction_timeout(&mut self, key: &TransactionKey, now: Instant) {
        match self.transactions.table.get_mut(key) {
            Some(Transaction::Invite(entry)) => {
                let event = entry.tx.handle_timeout(now);
                let call = entry.call;
                self.flush_transaction(key);
                if event == Some(ServerEvent::AckTimedOut)
                    && let Some(id) = call
                {
                    // "call ended" names it (sip.ack_timeout).
                    tracing::debug!(call = %id, "no ACK for our 200 OK within 64*T1; hanging up");
                    self.hang_up(id, EndReason::AckTimedOut, now);
                }
            }
            Some(Transaction::NonInvite(tx)) => {
                tx.handle_timeout(now);
                self.flush_transaction(key);
            }
            Some(Transaction::Bye(entry)) => {
                let event = entry.tx.handle_timeout(now);
                let call = entry.call;
                self.flush_transaction(key);
                if event == Some(ClientEvent::TimedOut) {
                    tracing::debug!(call = %call, "no answer to our BYE; call forgotten");
                    self.forget_call(call);
                }
            }
            None => {}
        }
    }

    /// A response that is not the registration's: our BYE's, or nobody's.
    pub(super) fn handle_bye_response(&mut self, response: &rsip::Response, now: Instant) {
        let Some(key) = TransactionKey::of_response(response) else {
            self.stats.malformed_dropped += 1;
            return;
        };
        debug_assert_eq!(key.role(), Role::Client);
        let Some(Transaction::Bye(entry)) = self.transactions.table.get_mut(&key) else {
            // A response to nothing of ours (RFC 3261 §18.1.2): drop it.
            return;
        };
        let event = entry.tx.handle_response(response.status_code.code(), now);
        let call = entry.call;
        self.flush_transaction(&key);
        if let Some(ClientEvent::Final(code)) = event {
            tracing::debug!(call = %call, status = code, "our BYE answered");
            self.forget_call(call);
        }
    }
}
