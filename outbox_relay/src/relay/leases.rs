//! A batch's ids grouped by lease token, for the batch calls (complete,
//! release, extend) that take one token for many ids.

use super::session::Conn;
use crate::{Claim, Error, LeaseToken, Message};

/// Ids per lease token, in first-seen order.
///
/// `outbox.claim` leases a whole batch under one token, so in practice this
/// is one group. Grouping anyway costs nothing and means a worker never
/// finishes a message with another message's token, whatever a claim holds.
#[derive(Debug, Default)]
pub(crate) struct Leases(Vec<(LeaseToken, Vec<i64>)>);

impl Leases {
    pub fn of(items: impl IntoIterator<Item = (i64, LeaseToken)>) -> Leases {
        let mut groups: Vec<(LeaseToken, Vec<i64>)> = Vec::new();
        for (id, token) in items {
            match groups.iter_mut().find(|(t, _)| *t == token) {
                Some((_, ids)) => ids.push(id),
                None => groups.push((token, vec![id])),
            }
        }
        Leases(groups)
    }

    /// Every row of a claim, the undeliverable ones too.
    pub fn of_claim(claim: &Claim) -> Leases {
        Leases::of(
            claim
                .messages
                .iter()
                .map(|m| (m.id, m.lease_token))
                .chain(claim.undeliverable.iter().map(|u| (u.id, u.lease_token))),
        )
    }

    pub fn of_messages(messages: &[&Message]) -> Leases {
        Leases::of(messages.iter().map(|m| (m.id, m.lease_token)))
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(|(_, ids)| ids.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The one token and its ids, when there is exactly one.
    pub fn single(&self) -> Option<(LeaseToken, &[i64])> {
        match self.0.as_slice() {
            [(token, ids)] => Some((*token, ids)),
            _ => None,
        }
    }

    /// `outbox.complete_batch` per token: how many were still held.
    pub async fn complete_batch(&self, c: &Conn) -> Result<u64, Error> {
        let mut n = 0;
        for (token, ids) in &self.0 {
            n += c.complete_batch(ids, *token).await?;
        }
        Ok(n)
    }

    /// `outbox.release_batch` per token: how many went back.
    pub async fn release_batch(&self, c: &Conn) -> Result<u64, Error> {
        let mut n = 0;
        for (token, ids) in &self.0 {
            n += c.release_batch(ids, *token).await?;
        }
        Ok(n)
    }

    /// `outbox.extend_batch` per token, by the relay's lease: how many are
    /// still held.
    pub async fn extend_batch(&self, c: &Conn) -> Result<u64, Error> {
        let mut n = 0;
        for (token, ids) in &self.0 {
            n += c.extend_batch(ids, *token).await?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn ids_are_grouped_by_token_in_first_seen_order() {
        let (a, b) = (LeaseToken(Uuid::new_v4()), LeaseToken(Uuid::new_v4()));
        let leases = Leases::of([(1, a), (2, b), (3, a)]);
        assert_eq!(leases.0, vec![(a, vec![1, 3]), (b, vec![2])]);
        assert_eq!(leases.len(), 3);
        assert!(leases.single().is_none());
        let one = Leases::of([(7, a), (8, a)]);
        assert_eq!(one.single(), Some((a, &[7, 8][..])));
        assert!(Leases::of([]).is_empty());
    }
}
