"""The outbox id a send carries in `biz_opaque_callback_data`, and what a status webhook's
callback data reads back as: other tools on the number write their own there."""

from __future__ import annotations

import pytest

from puente.outbound.outbox.service import callback_data_for, outbox_id_from_callback


def test_callback_data_names_the_outbox_item_it_was_written_for() -> None:
    assert outbox_id_from_callback(callback_data_for(42)) == 42


# Signs, spaces, digits of other scripts and ids past a bigint are not what the outbox writes.
FOREIGN = ["", "outbox:", "order:42", "outbox:+42", "outbox: 42", "outbox:４２", "outbox:²"]


@pytest.mark.parametrize("data", [None, 42, *FOREIGN, f"outbox:{2**63}"])
def test_other_callback_data_names_no_outbox_item(data: object) -> None:
    assert outbox_id_from_callback(data) is None
