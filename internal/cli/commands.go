package cli

import "github.com/spf13/cobra"

// commands lists hyhome's subcommands in the order `hyhome --help` shows them.
func commands(a *app) []*cobra.Command {
	return []*cobra.Command{
		newLintCmd(a),
		newFixCmd(a),
		newRulesCmd(a),
		newGuardCmd(a),
		newAuditCmd(a),
		newShipCmd(a),
		newVerifyCmd(a),
		newCanaryCmd(a),
		newHealthcheckCmd(a),
	}
}
