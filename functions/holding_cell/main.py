"""holding_cell: deposit, withdraw and balance for the signed-in user's escrow."""

from __future__ import annotations

import functions_framework

from shared.http import Auth, Call, endpoint
from shared.money import holding_cell as cell


@functions_framework.http
@endpoint("holding_cell", body=cell.HoldingCellRequest, auth=Auth.USER)
def holding_cell(
    call: Call[cell.DepositRequest | cell.WithdrawRequest | cell.BalanceRequest],
) -> cell.DepositResponse | cell.WithdrawResponse | cell.Balance:
    user_id, body = call.user_id, call.body
    if isinstance(body, cell.DepositRequest):
        return cell.deposit(user_id, call.caller.email if call.caller else None, body)
    if isinstance(body, cell.WithdrawRequest):
        return cell.withdraw(user_id, body)
    return cell.balance(user_id)
