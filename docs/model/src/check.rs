//! Running the checker: exhaustive BFS on (at most) two cores.

use std::collections::BTreeSet;
use std::time::Instant;

use stateright::HasDiscoveries;

use stateright::{Checker, Model};

use crate::ProtocolModel;

/// Exhaustive BFS; prints what it explored and how long it took.
pub fn bfs(name: &str, model: ProtocolModel) -> impl Checker<ProtocolModel> {
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    let checker = model.checker().threads(threads).spawn_bfs().join();
    println!(
        "{name}: {} states explored ({} unique), max depth {}, {:.1?}",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed()
    );
    checker
}

/// The shortest counterexample (or example) to `property`, if any.
///
/// stateright keeps the last discovery it meets, not the first, so one BFS
/// does not give the shortest path. Searching with a growing depth bound does:
/// the first bound with a discovery is the shortest length.
pub fn shortest(name: &str, model: ProtocolModel, property: &'static str) -> Option<String> {
    let started = Instant::now();
    let mut explored = 0;
    for depth in 2..=64 {
        let checker = model
            .clone()
            .checker()
            .target_max_depth(depth)
            .finish_when(HasDiscoveries::AnyOf(BTreeSet::from([property])))
            .spawn_bfs()
            .join();
        explored += checker.state_count();
        if let Some(found) = trace(&checker, property) {
            println!(
                "{name}: {explored} states explored to find the shortest discovery of {property:?}, {:.1?}",
                started.elapsed()
            );
            return Some(found);
        }
        if checker.max_depth() < depth - 1 {
            // The whole state space fits below this bound: there is none.
            break;
        }
    }
    None
}

/// The shortest path (BFS) to a property's discovery, one action per line.
pub fn trace(checker: &impl Checker<ProtocolModel>, property: &'static str) -> Option<String> {
    let path = checker.discovery(property)?;
    let model = checker.model();
    Some(
        path.into_vec()
            .iter()
            .filter_map(|(_, a)| a.map(|a| model.format_action(&a)))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}
