"""telemetry events partitioned by month on PostgreSQL

PostgreSQL: product_usage_events becomes PARTITION BY RANGE (occurred_at), one partition
per month from the oldest event or three months back (at most 24 months back; older
rows go to DEFAULT, where retention deletes them) to a few months ahead, plus a DEFAULT partition so an insert never
fails. The rows move over, the id sequence is kept (ids go on where they were). A
partitioned table's unique keys must hold the partition key, so the primary key becomes
(id, occurred_at) and the replay key (event_uid, occurred_at): a spooled event replays
with the occurred_at it was spooled with, so it is still inserted at most once.
Nothing references product_usage_events by foreign key.

SQLite keeps the plain table; only the replay key changes, as the model says.

The partition bookkeeping is written out here rather than imported from
tenantpilot.partitions: a migration must keep doing what it did when the code moves on.

Revision ID: 0012_telemetry_partitions
Revises: 0009_approval_requests
"""
from datetime import datetime, timezone

from alembic import op

revision = "0012_telemetry_partitions"
down_revision = "0011_runs_hourly"
branch_labels = None
depends_on = None

TABLE = "product_usage_events"
AHEAD_MONTHS = 3  # tenantpilot.telemetry.PARTITIONS_AHEAD; the scheduler keeps it from here
BACK_MONTHS = 3
MAX_MONTHS = 24  # at most this far back and ahead; anything further waits in DEFAULT
INDEXES = (
    ("ix_product_usage_events_occurred", "occurred_at"),
    ("ix_product_usage_events_event_occurred", "event_name, occurred_at"),
    ("ix_product_usage_events_ws_tenant_occurred", "workspace_id, tenant_id, occurred_at"),
)
FKS = (
    ("fk_product_usage_events_workspace_id_workspaces", "workspace_id", "workspaces"),
    ("fk_product_usage_events_tenant_id_tenants", "tenant_id", "tenants"),
)


def _month(t: datetime, add: int = 0) -> datetime:
    index = t.year * 12 + t.month - 1 + add
    return datetime(index // 12, index % 12 + 1, 1)


def _constraints(pk: str, uid: str) -> None:
    op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT pk_product_usage_events PRIMARY KEY ({pk})")
    for name, column, target in FKS:
        op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} FOREIGN KEY ({column}) REFERENCES {target} (id)")
    for name, columns in INDEXES:
        op.execute(f"CREATE INDEX {name} ON {TABLE} ({columns})")
    op.execute(f"CREATE UNIQUE INDEX uq_product_usage_events_event_uid ON {TABLE} ({uid})")


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        op.drop_index("uq_product_usage_events_event_uid", table_name=TABLE)
        op.create_index("uq_product_usage_events_event_uid", TABLE, ["event_uid", "occurred_at"], unique=True)
        return
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    oldest, newest = bind.exec_driver_sql(f"SELECT min(occurred_at), max(occurred_at) FROM {TABLE}").one()
    # From the oldest event (or the default 90-day retention back, so a backfill or the
    # demo seed lands in its own months) to a few months ahead.
    first = max(min(_month(oldest or now), _month(now, -BACK_MONTHS)), _month(now, -MAX_MONTHS))
    last = min(_month(max(newest or now, now), AHEAD_MONTHS), _month(now, MAX_MONTHS))
    op.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_unpartitioned")
    # Same columns, NOT NULLs and defaults (id keeps nextval of its sequence).
    op.execute(f"CREATE TABLE {TABLE} (LIKE {TABLE}_unpartitioned INCLUDING DEFAULTS) PARTITION BY RANGE (occurred_at)")
    month = first
    while month <= last:
        nxt = _month(month, 1)
        op.execute(f"CREATE TABLE {TABLE}_y{month.year:04d}m{month.month:02d} PARTITION OF {TABLE} "
                   f"FOR VALUES FROM ('{month:%Y-%m-%d}') TO ('{nxt:%Y-%m-%d}')")
        month = nxt
    op.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
    op.execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE}_unpartitioned")
    op.execute(f"ALTER SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id")
    op.execute(f"DROP TABLE {TABLE}_unpartitioned")
    # Indexes after the rows: one build per partition instead of row-by-row upkeep.
    _constraints("id, occurred_at", "event_uid, occurred_at")


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        op.drop_index("uq_product_usage_events_event_uid", table_name=TABLE)
        op.create_index("uq_product_usage_events_event_uid", TABLE, ["event_uid"], unique=True)
        return
    # A plain table again (event_uid alone unique: replays wrote each uid once).
    op.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_partitioned")
    op.execute(f"CREATE TABLE {TABLE} (LIKE {TABLE}_partitioned INCLUDING DEFAULTS)")
    op.execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE}_partitioned")
    op.execute(f"ALTER SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id")
    op.execute(f"DROP TABLE {TABLE}_partitioned")  # its partitions go with it
    _constraints("id", "event_uid")
