//! A join whose one side is known to be small hashes it, even when the session sorts and
//! merges its joins.
//!
//! A large build switches the session to sort-merge joins (see `build::merge_joins`), whose
//! sorts spill, so that memory stays bounded. DataFusion then sorts both sides of every
//! join, also to look up 100,000 patients or a 16-row class map from 3.7 million
//! encounters: a spilling sort of the large side for each small table joined. This rule
//! turns such a join back into a hash join that holds only the small side, when the
//! statistics of that side (row counts the Delta log and Parquet footers give), times a
//! width guessed from the types of the columns the join reads from it, come to at most a
//! set number of bytes: a side read for two of its columns holds far less than one read
//! whole. A side whose size is not known stays sorted, and if a join chosen so does not fit
//! after all, the table is built again with the rule off.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use stratus_lake::deltalake::arrow::datatypes::{DataType, Schema};
use stratus_lake::deltalake::datafusion::common::Result as DfResult;
use stratus_lake::deltalake::datafusion::common::stats::Precision;
use stratus_lake::deltalake::datafusion::common::tree_node::{Transformed, TreeNode};
use stratus_lake::deltalake::datafusion::config::ConfigOptions;
use stratus_lake::deltalake::datafusion::execution::SessionState;
use stratus_lake::deltalake::datafusion::physical_optimizer::PhysicalOptimizerRule;
use stratus_lake::deltalake::datafusion::physical_plan::joins::{
    HashJoinExec, PartitionMode, SortMergeJoinExec,
};
use stratus_lake::deltalake::datafusion::physical_plan::{
    ExecutionPlan, StatisticsArgs, StatisticsContext,
};

/// Hash joins for sort-merge joins with a side of at most about `max_bytes` bytes.
#[derive(Debug)]
pub struct SmallSideHashJoin {
    max_bytes: usize,
    /// Off once a join it chose did not fit: estimates can be wrong.
    on: AtomicBool,
}

/// How much smaller than `max_bytes` an estimate (not a count) must be to be trusted: a
/// filter's guess at its share of the rows can be far off, a guess of a few thousand rows
/// from joining two small lookup tables is not.
const ESTIMATE_MARGIN: usize = 1000;

impl SmallSideHashJoin {
    pub fn new(max_bytes: usize) -> SmallSideHashJoin {
        SmallSideHashJoin {
            max_bytes,
            on: AtomicBool::new(true),
        }
    }

    /// Sorts and merges every join from now on.
    pub fn turn_off(&self) {
        self.on.store(false, Ordering::Relaxed);
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    fn small(&self, side: &Arc<dyn ExecutionPlan>) -> bool {
        let Ok(stats) = StatisticsContext::new().compute(side.as_ref(), &StatisticsArgs::new())
        else {
            return false;
        };
        let row = row_bytes(&side.schema());
        match stats.num_rows {
            Precision::Exact(n) => n.saturating_mul(row) <= self.max_bytes,
            Precision::Inexact(n) => n.saturating_mul(row) <= self.max_bytes / ESTIMATE_MARGIN,
            Precision::Absent => false,
        }
    }
}

/// A guess at what one row of `schema` takes in a hash join's build side: the values (text
/// as long as a FHIR reference with a hashed id, anything nested as a few fields of it) and
/// the hash table's entry. Too low a guess is caught: a join that does not fit is redone.
fn row_bytes(schema: &Schema) -> usize {
    let value = |t: &DataType| match t {
        DataType::Boolean => 1,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 80,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => 80,
        t => t.primitive_width().unwrap_or(400),
    };
    32 + schema
        .fields()
        .iter()
        .map(|f| value(f.data_type()))
        .sum::<usize>()
}

/// The rule among a session state's physical optimizer rules, if it is there.
pub fn rule(state: &SessionState) -> Option<&SmallSideHashJoin> {
    state.physical_optimizers().iter().find_map(|r| {
        let any: &dyn Any = r.as_ref();
        any.downcast_ref::<SmallSideHashJoin>()
    })
}

impl PhysicalOptimizerRule for SmallSideHashJoin {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(smj) = node.downcast_ref::<SortMergeJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            if !self.is_on() {
                return Ok(Transformed::no(node));
            }
            if !self.small(smj.left()) && !self.small(smj.right()) {
                return Ok(Transformed::no(node));
            }
            // `Auto`: DataFusion's join selection, which runs next, puts the smaller side
            // on the build side and picks how to partition.
            let hash = HashJoinExec::try_new(
                Arc::clone(smj.left()),
                Arc::clone(smj.right()),
                smj.on().to_vec(),
                smj.filter().clone(),
                &smj.join_type(),
                None,
                PartitionMode::Auto,
                smj.null_equality(),
                false,
            )?;
            Ok(Transformed::yes(Arc::new(hash) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "small_side_hash_join"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_lake::deltalake::datafusion::execution::SessionStateBuilder;
    use stratus_lake::deltalake::datafusion::physical_plan::displayable;
    use stratus_lake::deltalake::datafusion::prelude::{SessionConfig, SessionContext};

    /// The physical plan of a join of a 6-row table to a 2-row one (an integer and a text
    /// column, 120 bytes a row as guessed), in a session that sorts and merges, with the
    /// rule allowing `max_bytes`.
    async fn plan(max_bytes: usize) -> String {
        let mut config = SessionConfig::new().with_target_partitions(2);
        config.options_mut().optimizer.prefer_hash_join = false;
        let defaults = SessionStateBuilder::new()
            .with_config(config.clone())
            .with_default_features()
            .build();
        let mut rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> =
            vec![Arc::new(SmallSideHashJoin::new(max_bytes))];
        rules.extend(defaults.physical_optimizers().iter().cloned());
        let state = SessionStateBuilder::new_from_existing(defaults)
            .with_physical_optimizer_rules(rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.sql(
            "CREATE TABLE big AS VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e'), (6, 'f')",
        )
        .await
        .expect("big")
        .collect()
        .await
        .expect("big rows");
        ctx.sql("CREATE TABLE small AS VALUES (1, 'x'), (2, 'y')")
            .await
            .expect("small")
            .collect()
            .await
            .expect("small rows");
        let df = ctx
            .sql("SELECT b.column2, s.column2 FROM big AS b LEFT JOIN small AS s ON s.column1 = b.column1")
            .await
            .expect("plan");
        let physical = df.create_physical_plan().await.expect("physical");
        displayable(physical.as_ref()).indent(false).to_string()
    }

    #[tokio::test]
    async fn a_join_to_a_table_known_to_be_small_hashes_it() {
        let small = plan(2 * 120).await;
        assert!(small.contains("HashJoinExec"), "{small}");
        assert!(!small.contains("SortMergeJoin"), "{small}");
        let large = plan(2 * 120 - 1).await;
        assert!(large.contains("SortMergeJoin"), "{large}");
    }
}
