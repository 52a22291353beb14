//! A study's SQL names FHIR fields that a site's tables may not have: the ETL's wide schema
//! drops deep fields no row had, and a site may never send some element at all. SQL on a
//! missing field fails to plan, so every source table is read through a schema that is its
//! own merged with the fields the study declares it reads; what a table lacks comes back
//! as NULL, the way cumulus-library's `CAST(NULL AS …)` fallbacks behave, without templating
//! the SQL.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use stratus_lake::deltalake::arrow::array::{
    Array, ArrayRef, AsArray, ListArray, RecordBatch, RecordBatchOptions, StructArray,
    new_null_array,
};
use stratus_lake::deltalake::arrow::compute::cast;
use stratus_lake::deltalake::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use stratus_lake::deltalake::arrow::error::ArrowError;
use stratus_lake::deltalake::datafusion::catalog::{Session, TableProvider};
use stratus_lake::deltalake::datafusion::common::tree_node::TreeNodeRecursion;
use stratus_lake::deltalake::datafusion::common::{
    DataFusionError, Result as DfResult, Statistics,
};
use stratus_lake::deltalake::datafusion::datasource::TableType;
use stratus_lake::deltalake::datafusion::execution::{SendableRecordBatchStream, TaskContext};
use stratus_lake::deltalake::datafusion::logical_expr::Expr;
use stratus_lake::deltalake::datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use stratus_lake::deltalake::datafusion::physical_plan::execution_plan::{
    Boundedness, EmissionType,
};
use stratus_lake::deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use stratus_lake::deltalake::datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, StatisticsArgs,
};

/// `a`'s fields, merged by name with `b`'s, recursively through structs and lists; a field
/// only `b` has comes after `a`'s. Where both have a leaf, `a`'s type wins (it is the data's).
pub fn merge_fields(a: &Fields, b: &Fields) -> Fields {
    let mut out: Vec<Field> = a
        .iter()
        .map(|f| match b.find(f.name()) {
            Some((_, g)) => f
                .as_ref()
                .clone()
                .with_data_type(merge_type(f.data_type(), g.data_type())),
            None => f.as_ref().clone(),
        })
        .collect();
    for g in b.iter() {
        if a.find(g.name()).is_none() {
            out.push(g.as_ref().clone());
        }
    }
    Fields::from(out)
}

fn merge_type(a: &DataType, b: &DataType) -> DataType {
    match (a, b) {
        (DataType::Struct(fa), DataType::Struct(fb)) => DataType::Struct(merge_fields(fa, fb)),
        (DataType::List(ia), DataType::List(ib)) => DataType::List(Arc::new(
            ia.as_ref()
                .clone()
                .with_data_type(merge_type(ia.data_type(), ib.data_type())),
        )),
        _ => a.clone(),
    }
}

/// `array` in the shape of `to`: struct fields matched by name (missing ones all NULL,
/// extra ones dropped), list items likewise, anything else cast.
pub fn conform_array(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == to {
        return Ok(Arc::clone(array));
    }
    match (array.data_type(), to) {
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let s = array.as_struct();
            let columns = fields
                .iter()
                .map(|f| match s.column_by_name(f.name()) {
                    Some(c) => conform_array(c, f.data_type()),
                    None => Ok(new_null_array(f.data_type(), s.len())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                columns,
                s.nulls().cloned(),
            )?))
        }
        (DataType::List(_), DataType::List(item)) => {
            let l = array.as_list::<i32>();
            let values = conform_array(l.values(), item.data_type())?;
            Ok(Arc::new(ListArray::try_new(
                Arc::clone(item),
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            )?))
        }
        _ => cast(array, to),
    }
}

/// `batch` with `schema`'s columns, in its order, matched by name.
pub fn conform_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let n = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => conform_array(c, f.data_type()),
            None => Ok(new_null_array(f.data_type(), n)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(n)),
    )
}

/// A table read through a wider schema than it has.
#[derive(Debug)]
pub struct ConformTable {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
}

impl ConformTable {
    /// `inner` seen with its own schema merged with `wanted`.
    pub fn new(inner: Arc<dyn TableProvider>, wanted: &Schema) -> ConformTable {
        let own = inner.schema();
        let schema = Arc::new(Schema::new(merge_fields(own.fields(), wanted.fields())));
        ConformTable { inner, schema }
    }
}

#[async_trait]
impl TableProvider for ConformTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let wanted: Vec<Field> = match projection {
            Some(p) => p.iter().map(|i| self.schema.field(*i).clone()).collect(),
            None => self
                .schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect(),
        };
        // Only the columns the query reads, of those the table has: the projection reaches
        // the Parquet reader.
        let own = self.inner.schema();
        let inner_projection: Vec<usize> = wanted
            .iter()
            .filter_map(|f| own.index_of(f.name()).ok())
            .collect();
        let input = self
            .inner
            .scan(state, Some(&inner_projection), &[], limit)
            .await?;
        Ok(Arc::new(ConformExec::new(
            input,
            Arc::new(Schema::new(wanted)),
        )))
    }
}

/// Maps each batch of its input to a schema.
#[derive(Debug)]
struct ConformExec {
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl ConformExec {
    fn new(input: Arc<dyn ExecutionPlan>, schema: SchemaRef) -> ConformExec {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            input.properties().output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        ConformExec {
            input,
            schema,
            properties,
        }
    }
}

impl DisplayAs for ConformExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ConformExec")
    }
}

impl ExecutionPlan for ConformExec {
    fn name(&self) -> &str {
        "ConformExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    /// The input's row count (and size), so that the planner can put the smaller side of
    /// a join in memory: without it, every join of a source table built on the left,
    /// whatever its size (core__encounter at 100,000 patients held over 16 GB).
    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.schema);
        if let Some(input) = input_stats.first() {
            stats.num_rows = input.num_rows;
            stats.total_byte_size = input.total_byte_size;
        }
        Ok(Arc::new(stats))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = children
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("ConformExec needs one child".into()))?;
        Ok(Arc::new(ConformExec::new(input, Arc::clone(&self.schema))))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let schema = Arc::clone(&self.schema);
        let input = self.input.execute(partition, context)?;
        let mapped = {
            let schema = Arc::clone(&schema);
            input.map(move |b| {
                b.and_then(|b| {
                    conform_batch(&b, &schema)
                        .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
                })
            })
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, mapped)))
    }
}
