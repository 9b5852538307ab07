// Memory of the cocotb stream harness: asynchronous read, synchronous write and no initial
// contents. The bench fills it through VPI, so a deep memory costs no elaboration time (an
// Amaranth Memory would emit one initial assignment per word).
module harness_ram #(
    parameter WIDTH = 8,
    parameter DEPTH = 16,
    parameter ADDR_WIDTH = 4
) (
    input clk,
    input [ADDR_WIDTH-1:0] raddr,
    output [WIDTH-1:0] rdata,
    input we,
    input [ADDR_WIDTH-1:0] waddr,
    input [WIDTH-1:0] wdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    assign rdata = mem[raddr];
    always @(posedge clk) begin
        if (we) mem[waddr] <= wdata;
    end
endmodule
