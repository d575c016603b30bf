/* tests/unit/test_spec.c — the text spec parser and the host-only shape check.
 *
 * No device needed. Valid specs are compared field by field with descriptions built
 * by hand from PyTorch's constructor defaults; invalid specs must fail with
 * CT_ERR_INVALID_ARG (parser) or CT_ERR_SHAPE (shapes) and a one-line message that names
 * the offending token and its 1-based position. Parameter counts are those PyTorch
 * reports for the same nn.Sequential (sum(p.numel() for p in model.parameters())).
 */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static ct_layer_desc *parse_ok(const char *spec, size_t *n)
{
    ct_layer_desc *l = NULL;
    ct_status st = ct_spec_parse(spec, &l, n);
    cr_assert(st == CT_SUCCESS, "'%s' should parse: %s", spec, ct_last_error());
    return l;
}

/* Parsing must fail with `code`, and the message must contain every `want` string
 * and be a single line. */
static void parse_fails(const char *spec, const char *want1, const char *want2)
{
    ct_layer_desc *l = (ct_layer_desc *)1;
    size_t n = 99;
    ct_status st = ct_spec_parse(spec, &l, &n);
    const char *msg = ct_last_error();
    cr_assert(st == CT_ERR_INVALID_ARG, "'%s' should fail, got %s", spec, ct_status_str(st));
    cr_assert(l == NULL && n == 0, "'%s': outputs not cleared on failure", spec);
    cr_assert(strstr(msg, want1) != NULL, "'%s': message '%s' lacks '%s'", spec, msg, want1);
    if (want2)
        cr_assert(strstr(msg, want2) != NULL, "'%s': message '%s' lacks '%s'", spec, msg, want2);
    cr_assert(strchr(msg, '\n') == NULL, "message is not one line: '%s'", msg);
}

static void assert_same(const ct_layer_desc *a, const ct_layer_desc *b, size_t i)
{
    cr_assert(a->kind == b->kind, "layer %zu: kind %d vs %d", i, a->kind, b->kind);
    cr_assert(a->out == b->out && a->kernel_h == b->kernel_h && a->kernel_w == b->kernel_w &&
                  a->stride_h == b->stride_h && a->stride_w == b->stride_w &&
                  a->pad_h == b->pad_h && a->pad_w == b->pad_w && a->dil_h == b->dil_h &&
                  a->dil_w == b->dil_w && a->groups == b->groups && a->bias == b->bias &&
                  a->ceil_mode == b->ceil_mode && a->count_include_pad == b->count_include_pad &&
                  a->negative_slope == b->negative_slope && a->p == b->p && a->eps == b->eps &&
                  a->momentum == b->momentum && a->affine == b->affine,
              "layer %zu (%s): fields differ", i, ct_layer_kind_name(a->kind));
}

Test(spec, minicnn_builtin)
{
    size_t n = 0;
    ct_layer_desc *l = parse_ok("minicnn", &n);
    ct_layer_desc want[10] = {
        ct_layer_conv2d(32, 3, 1, 1),
        ct_layer_desc_default(CT_LAYER_RELU),
        ct_layer_maxpool2d(2),
        ct_layer_conv2d(64, 3, 1, 1),
        ct_layer_desc_default(CT_LAYER_RELU),
        ct_layer_maxpool2d(2),
        ct_layer_desc_default(CT_LAYER_FLATTEN),
        ct_layer_linear(128),
        ct_layer_desc_default(CT_LAYER_RELU),
        ct_layer_linear(10),
    };
    cr_assert_eq(n, 10);
    for (size_t i = 0; i < n; i++)
        assert_same(&l[i], &want[i], i);
    /* maxpool's stride stays "None" (0) until the shape check resolves it to the kernel */
    cr_assert_eq(l[2].stride_h, 0);
    free(l);

    /* the builtin is exactly its documented expansion, spaces and case do not matter */
    ct_layer_desc *e = parse_ok(" Conv(32, 3, pad=1)  RELU maxpool(2)\tconv(64,3,padding=1) relu "
                                "maxpool2d(kernel=2) flatten fc(128) relu dense(out=10) ",
                                &n);
    cr_assert_eq(n, 10);
    for (size_t i = 0; i < n; i++)
        assert_same(&e[i], &want[i], i);
    free(e);
    cr_assert(ct_spec_builtin("  MiniCNN ") != NULL);
    cr_assert(ct_spec_builtin("minicnn2") == NULL);
}

Test(spec, every_option)
{
    size_t n = 0;
    ct_layer_desc *l =
        parse_ok("conv(16,3x5,2,1x0,dil=2,groups=4,bias=0) maxpool(3,stride=2,pad=1,ceil=1) "
                 "avgpool(2,1,count_include_pad=false,ceil_mode=true) gap linear(7,bias=false) "
                 "leakyrelu(0.2) leaky_relu(negative_slope=0.5) sigmoid() tanh dropout(0.25) "
                 "dropout(p=0) bn(eps=1e-3,momentum=0.05,affine=0) batchnorm1d softmax log_softmax",
                 &n);
    cr_assert_eq(n, 15);
    ct_layer_desc c = ct_layer_desc_default(CT_LAYER_CONV2D);
    c.out = 16;
    c.kernel_h = 3, c.kernel_w = 5, c.stride_h = c.stride_w = 2, c.pad_h = 1, c.pad_w = 0;
    c.dil_h = c.dil_w = 2, c.groups = 4, c.bias = false;
    assert_same(&l[0], &c, 0);
    ct_layer_desc mp = ct_layer_maxpool2d(3);
    mp.stride_h = mp.stride_w = 2, mp.pad_h = mp.pad_w = 1, mp.ceil_mode = true;
    assert_same(&l[1], &mp, 1);
    ct_layer_desc ap = ct_layer_desc_default(CT_LAYER_AVGPOOL2D);
    ap.kernel_h = ap.kernel_w = 2, ap.stride_h = ap.stride_w = 1, ap.ceil_mode = true;
    ap.count_include_pad = false;
    assert_same(&l[2], &ap, 2);
    cr_assert_eq(l[3].kind, CT_LAYER_GAP);
    cr_assert(l[4].kind == CT_LAYER_LINEAR && l[4].out == 7 && !l[4].bias);
    cr_assert(l[5].kind == CT_LAYER_LEAKY_RELU && l[5].negative_slope == 0.2f);
    cr_assert(l[6].kind == CT_LAYER_LEAKY_RELU && l[6].negative_slope == 0.5f);
    cr_assert_eq(l[7].kind, CT_LAYER_SIGMOID);
    cr_assert_eq(l[8].kind, CT_LAYER_TANH);
    cr_assert(l[9].kind == CT_LAYER_DROPOUT && l[9].p == 0.25f);
    cr_assert(l[10].kind == CT_LAYER_DROPOUT && l[10].p == 0.0f);
    cr_assert(l[11].kind == CT_LAYER_BATCHNORM && l[11].eps == 1e-3f && l[11].momentum == 0.05f &&
              !l[11].affine);
    cr_assert(l[12].kind == CT_LAYER_BATCHNORM && l[12].eps == 1e-5f && l[12].momentum == 0.1f &&
              l[12].affine);
    cr_assert_eq(l[13].kind, CT_LAYER_SOFTMAX);
    cr_assert_eq(l[14].kind, CT_LAYER_LOG_SOFTMAX);
    free(l);
}

/* ct_layer_desc_format spells every option out, and the parser reads it back to the same
 * description (a pool's default stride, 0, comes back as the kernel size it means); the
 * exact texts of a few; too small a buffer is refused. */
Test(spec, format_round_trips)
{
    size_t n = 0, m = 0;
    ct_layer_desc *l =
        parse_ok("conv(16,3x5,2,1x0,dil=2,groups=4,bias=0) conv(8,1) maxpool(3,stride=2,pad=1,"
                 "ceil=1) maxpool(2) avgpool(2,1,count_include_pad=false,ceil_mode=true) "
                 "avgpool(3x2) gap linear(7,bias=false) linear(9) leakyrelu(0.2) leakyrelu "
                 "relu sigmoid tanh flatten dropout(0.25) dropout bn(eps=1e-3,momentum=0.05,"
                 "affine=0) bn softmax log_softmax",
                 &n);
    char text[4096] = "", one[256];
    for (size_t i = 0; i < n; i++) {
        TU_OK(ct_layer_desc_format(&l[i], one, sizeof one));
        strcat(text, i ? " " : "");
        strcat(text, one);
    }
    ct_layer_desc *back = parse_ok(text, &m);
    cr_assert_eq(m, n, "%s", text);
    for (size_t i = 0; i < n; i++) {
        ct_layer_desc want = l[i];
        if ((want.kind == CT_LAYER_MAXPOOL2D || want.kind == CT_LAYER_AVGPOOL2D) && !want.stride_h)
            want.stride_h = want.kernel_h, want.stride_w = want.kernel_w;
        assert_same(&back[i], &want, i);
    }
    TU_OK(ct_layer_desc_format(&l[0], one, sizeof one));
    cr_assert_str_eq(one, "conv(16,3x5,stride=2x2,pad=1x0,dil=2x2,groups=4,bias=0)");
    TU_OK(ct_layer_desc_format(&l[3], one, sizeof one));
    cr_assert_str_eq(one, "maxpool(2x2,stride=2x2,pad=0x0,ceil=0)");
    TU_OK(ct_layer_desc_format(&l[18], one, sizeof one));
    cr_assert_str_eq(one, "bn(eps=9.99999975e-06,momentum=0.100000001,affine=1)");
    TU_OK(ct_layer_desc_format(&l[11], one, sizeof one));
    cr_assert_str_eq(one, "relu");
    cr_assert_eq(ct_layer_desc_format(&l[0], one, 20), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_layer_desc_format(NULL, one, sizeof one), CT_ERR_INVALID_ARG);
    free(l);
    free(back);
}

Test(spec, defaults_match_pytorch)
{
    ct_layer_desc d = ct_layer_desc_default(CT_LAYER_DROPOUT);
    cr_assert(d.p == 0.5f);
    d = ct_layer_desc_default(CT_LAYER_LEAKY_RELU);
    cr_assert(d.negative_slope == 0.01f);
    d = ct_layer_desc_default(CT_LAYER_BATCHNORM);
    cr_assert(d.eps == 1e-5f && d.momentum == 0.1f && d.affine);
    d = ct_layer_desc_default(CT_LAYER_AVGPOOL2D);
    cr_assert(d.count_include_pad && !d.ceil_mode && d.stride_h == 0);
    d = ct_layer_desc_default(CT_LAYER_CONV2D);
    cr_assert(d.stride_h == 1 && d.dil_h == 1 && d.groups == 1 && d.bias && d.pad_h == 0);
    cr_assert_str_eq(ct_layer_kind_name(CT_LAYER_CONV2D), "conv");
    cr_assert_str_eq(ct_layer_kind_name((ct_layer_kind)99), "?");
}

Test(spec, errors_name_token_and_position)
{
    /* positions are 1-based character columns */
    parse_fails("conv(8,3) convv(8,3)", "unknown layer 'convv'", "position 11");
    parse_fails("relu conv(8,3", "missing ')'", "position 10");
    parse_fails("conv(8,3,foo=1)", "unknown option 'foo' for conv", "position 10");
    parse_fails("maxpool(2, bias=1)", "unknown option 'bias' for maxpool", "position 12");
    parse_fails("conv(8, abc)", "bad value 'abc' for kernel of conv", "position 9");
    parse_fails("conv(0,3)", "bad value '0' for out of conv", "position 6");
    parse_fails("conv(8,3,stride=0)", "bad value '0' for stride", "position 17");
    parse_fails("conv(8,3x)", "bad value '3x' for kernel", "position 8");
    parse_fails("dropout(1.0)", "bad value '1.0' for p of dropout", "position 9");
    parse_fails("dropout(p=-0.1)", "bad value '-0.1' for p", "position 11");
    parse_fails("bn(eps=0)", "bad value '0' for eps", "position 8");
    parse_fails("linear(10,bias=maybe)", "bad value 'maybe' for bias", "position 16");
    parse_fails("relu conv(8)", "conv needs argument 'kernel'", "position 6");
    parse_fails("flatten linear", "linear needs argument 'out'", "position 9");
    parse_fails("linear(10, 20)", "too many arguments for linear: '20'", "position 12");
    parse_fails("relu(1)", "too many arguments for relu", "position 6");
    parse_fails("conv(8,3,pad=1,padding=2)", "option 'pad' given twice", "position 16");
    parse_fails("conv(8,kernel=3,1)", "positional argument '1' after key=value", "position 17");
    parse_fails("conv(8,,3)", "empty argument for conv", "position 8");
    parse_fails("relu, tanh", "unexpected ','", "position 5");
    parse_fails("relu 3", "unexpected '3'", "position 6");
    parse_fails("conv(8,3)relu", "unexpected 'r' after conv", "position 10");
    parse_fails("   ", "empty spec", NULL);
    parse_fails("", "empty spec", NULL);
    parse_fails("conv((8,3))", "missing ')'", "position 5");
}

Test(spec, null_arguments)
{
    ct_layer_desc *l = NULL;
    size_t n = 0;
    cr_assert_eq(ct_spec_parse(NULL, &l, &n), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_spec_parse("relu", NULL, &n), CT_ERR_INVALID_ARG);
}

static void check_shapes(const char *spec, size_t in_ndim, const size_t *in, size_t want_ndim,
                         const size_t *want, size_t want_params)
{
    size_t n = 0, ndim = 0, shape[3] = {0}, np = 0;
    ct_layer_desc *l = parse_ok(spec, &n);
    ct_status st = ct_layers_check(l, n, in_ndim, in, &ndim, shape, &np);
    cr_assert(st == CT_SUCCESS, "'%s': %s", spec, ct_last_error());
    cr_assert_eq(ndim, want_ndim, "'%s': output ndim", spec);
    for (size_t i = 0; i < ndim; i++)
        cr_assert_eq(shape[i], want[i], "'%s': output dim %zu is %zu, want %zu", spec, i, shape[i],
                     want[i]);
    cr_assert_eq(np, want_params, "'%s': %zu params, want %zu", spec, np, want_params);
    free(l);
}

Test(spec, shapes_and_parameter_counts)
{
    /* MiniCNN: 32*1*9+32 + 64*32*9+64 + 128*3136+128 + 10*128+10 */
    check_shapes("minicnn", 3, (size_t[]){1, 28, 28}, 1, (size_t[]){10}, 421642);
    /* same spec on CIFAR: Linear in-features become 64*8*8 */
    check_shapes("minicnn", 3, (size_t[]){3, 32, 32}, 1, (size_t[]){10},
                 896 + 18496 + (4096 * 128 + 128) + 1290);
    /* torch: Conv2d(3,16,(3,5),stride=2,padding=(1,0),dilation=2) on 32x32 -> 15x12 */
    check_shapes("conv(16,3x5,2,1x0,dil=2,bias=0)", 3, (size_t[]){3, 32, 32}, 3,
                 (size_t[]){16, 15, 12}, 16 * 3 * 15);
    /* grouped conv: weight (8, 4/2, 3, 3) */
    check_shapes("conv(8,3,groups=2)", 3, (size_t[]){4, 5, 5}, 3, (size_t[]){8, 3, 3},
                 8 * 2 * 9 + 8);
    /* MaxPool2d(3, 2, 1, ceil_mode=True) on 8 -> 5 (ceil((8+2-3)/2)+1 = 5, last window
     * starts at 8 >= 8+1? no -> kept); on 7 -> 4 */
    check_shapes("maxpool(3,2,1,ceil=1)", 3, (size_t[]){2, 8, 7}, 3, (size_t[]){2, 5, 4}, 0);
    /* MaxPool2d(2, ceil_mode=True) on 5 -> 3, floor mode -> 2 */
    check_shapes("maxpool(2,ceil=1)", 3, (size_t[]){1, 5, 5}, 3, (size_t[]){1, 3, 3}, 0);
    check_shapes("avgpool(2)", 3, (size_t[]){1, 5, 5}, 3, (size_t[]){1, 2, 2}, 0);
    /* PyTorch drops a ceil-mode window that would start in the right padding:
     * MaxPool2d(2, stride=2, padding=1, ceil_mode=True) on 5 -> 3, not ceil(5/2)+1 = 4 */
    check_shapes("maxpool(2,2,1,ceil=1)", 3, (size_t[]){1, 5, 5}, 3, (size_t[]){1, 3, 3}, 0);
    /* BatchNorm2d(6): weight + bias; BatchNorm1d(20) after flatten of (5,2,2) */
    check_shapes("conv(6,3) bn relu gap", 3, (size_t[]){1, 8, 8}, 1, (size_t[]){6}, 6 * 9 + 6 + 12);
    check_shapes("flatten bn dropout linear(3) softmax", 3, (size_t[]){5, 2, 2}, 1, (size_t[]){3},
                 40 + 63);
    check_shapes("bn(affine=0) tanh linear(4,bias=0) logsoftmax", 1, (size_t[]){9}, 1,
                 (size_t[]){4}, 36);
}

static void shape_fails(const char *spec, size_t in_ndim, const size_t *in, const char *want)
{
    size_t n = 0;
    ct_layer_desc *l = parse_ok(spec, &n);
    ct_status st = ct_layers_check(l, n, in_ndim, in, NULL, NULL, NULL);
    const char *msg = ct_last_error();
    cr_assert(st == CT_ERR_SHAPE, "'%s' should not fit, got %s", spec, ct_status_str(st));
    cr_assert(strstr(msg, want) != NULL, "'%s': message '%s' lacks '%s'", spec, msg, want);
    free(l);
}

Test(spec, shape_errors_name_the_layer)
{
    size_t mnist[3] = {1, 28, 28};
    shape_fails("conv(8,3) linear(10)", 3, mnist, "layer 1 (linear): needs a feature input");
    shape_fails("conv(8,3) linear(10)", 3, mnist, "put flatten");
    shape_fails("flatten conv(8,3)", 3, mnist,
                "layer 1 (conv): needs an image input (C,H,W), "
                "got (784)");
    shape_fails("conv(8,29)", 3, mnist, "layer 0 (conv): kernel 29x29");
    shape_fails("conv(8,3,groups=3)", 3, mnist, "groups 3 must divide in channels 1");
    shape_fails("maxpool(4,pad=3)", 3, mnist,
                "layer 0 (maxpool): padding 3x3 must be at most "
                "half");
    shape_fails("maxpool(2) maxpool(2) maxpool(2) maxpool(2) maxpool(2)", 3, mnist,
                "layer 4 (maxpool): window 2x2 does not fit input (1,1,1)");
    shape_fails("softmax", 3, mnist, "layer 0 (softmax): needs a feature input");
    shape_fails("gap gap", 3, mnist, "layer 1 (gap)");
}
